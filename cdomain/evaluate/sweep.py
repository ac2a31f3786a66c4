"""Quality sweeps: how a trained model's metric changes with the JPEG quality of its inputs.

For every checkpoint and every IJG quality, the validation images are re-encoded at that
quality (cached on disk, see :mod:`cdomain.data.quality`), fed to the model exactly as in
training (the checkpoint records its input layout, FBS size and normalisation), and the metric
is reported beside the mean compressed size: bytes per image and bits per pixel. This is the
"compression impact" measurement; applied to a model trained on high-quality images only, it is
the no-mitigation baseline.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from cdomain.atomic import atomic_write
from cdomain.checkpoint import Checkpoint
from cdomain.data.folder import SampleList
from cdomain.data.inputs import make_loader
from cdomain.data.quality import reencoded_samples
from cdomain.errors import CheckpointError
from cdomain.jpeg.markers import parse_header
from cdomain.train.engine import Classification, Task, evaluate
from cdomain.train.engine import task_of_model


@dataclass(frozen=True)
class CoarseClassification(Classification):
    """Classification that also scores predictions mapped to coarse classes (``coarse[fine] = coarse``)."""

    coarse: tuple[int, ...] = ()

    def loss(self, outputs, targets):
        loss, sums = super().loss(outputs, targets)
        table = torch.as_tensor(self.coarse, device=outputs.device)
        sums["coarse_correct"] = float((table[outputs.argmax(1)] == table[targets]).sum())
        return loss, sums

    def summarize(self, sums):
        metrics = super().summarize(sums)
        metrics["coarse_acc"] = 100.0 * sums.get("coarse_correct", 0.0) / max(1.0, sums["count"])
        return metrics

#: The qualities of the compression-impact studies, and the CPT figures' range.
DEFAULT_QUALITIES = (5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 90, 95)


@dataclass(frozen=True)
class SweepPoint:
    """One (checkpoint, quality) measurement."""

    checkpoint: str
    quality: int | None  # None: the original files
    metric: str
    value: float
    loss: float
    mean_bytes: float
    bits_per_pixel: float
    images: int
    skipped: int = 0  # unreadable files skipped (--skip-bad)
    mse: float | None = None  # counting: the literature's "MSE", the root of the mean squared count error
    transcoded: int = 0  # files read through YCbCr JPEG copies (--transcode)
    top5: float | None = None  # classifiers: top-5 accuracy in percent
    coarse_accuracy: float | None = None  # a fine classifier read through a label map: coarse top-1


def compressed_size(samples: SampleList, skip_bad: bool = False, strict: bool = True,
                    transcode=None) -> tuple[float, float]:
    """Mean file size in bytes and mean bits per pixel of the sample files (readable ones with ``skip_bad``;
    transcoded copies for unsupported formats with ``transcode``; lenient reading without ``strict``)."""
    sizes, bpp = [], []
    for path in samples.paths:
        try:
            data = Path(path).read_bytes()
            data, height, width = _sized(data, path, strict, transcode)
        except (OSError, ValueError):
            if skip_bad:
                continue
            raise
        sizes.append(len(data))
        bpp.append(8 * len(data) / (height * width))
    return float(np.mean(sizes)), float(np.mean(bpp))


#: The sweep metric of each model task, and the key of the task's metrics that holds it.
SWEEP_METRICS = {"classification": ("accuracy", "acc"), "density": ("mae", "mae"), "segmentation": ("miou", "miou")}
#: Axis labels of the sweep metrics.
METRIC_LABELS = {"accuracy": "accuracy (%)", "mae": "counting MAE (people)", "miou": "mIoU (%)"}


def _sized(data: bytes, path: str, strict: bool, transcode) -> tuple[bytes, int, int]:
    """``(bytes, height, width)`` of a sample file: its own, or its transcoded copy's for an
    unsupported format (``transcode``); without ``strict``, the frame of a file only lenient
    reading accepts."""
    from cdomain.jpeg.errors import JPEGError, UnsupportedFormat
    from cdomain.jpeg.reader import read_coefficients

    try:
        header = parse_header(data, path)
        return data, header.height, header.width
    except UnsupportedFormat:
        if transcode is None:
            raise
        from cdomain.jpeg.transcode import transcoded_path

        copy = transcoded_path(path, transcode)
        return _sized(copy.read_bytes(), str(copy), True, None)
    except JPEGError:
        if strict:
            raise
        image = read_coefficients(data, strict=False)
        return data, image.height, image.width


def metric_of(checkpoint: Checkpoint) -> str:
    """The sweep metric of a checkpoint: ``"accuracy"`` (classifiers), ``"mae"`` (counting) or
    ``"miou"`` (segmentation)."""
    return SWEEP_METRICS[checkpoint.header.task][0]


def metric_value(checkpoint: Checkpoint, result: dict) -> float:
    """The sweep metric's value in ``result``, the metrics of :func:`evaluate_checkpoint`."""
    return result[SWEEP_METRICS[checkpoint.header.task][1]]


def evaluate_checkpoint(
    checkpoint: Checkpoint,
    samples: SampleList,
    *,
    crop: int | None,
    batch_size: int = 64,
    workers: int = 0,
    device: torch.device = torch.device("cpu"),
    target=None,
    skip_bad: bool = False,
    strict: bool = True,
    transcode=None,
    task: Task | None = None,
) -> dict:
    """Loss and metrics of ``checkpoint`` on ``samples``, loaded the way it was trained.

    Classifiers give ``acc`` (and ``top5``); counting networks (``target`` = the density targets)
    ``mae``/``mse``; segmentation networks (``target`` = the label maps) ``miou``/``pixel_acc``.
    ``task`` replaces the checkpoint's own (e.g. :class:`CoarseClassification`).
    """
    spec = checkpoint.input_spec
    if spec is None or spec.input == "latent":
        raise CheckpointError(f"{checkpoint.path}: JPEG quality sweeps need a network on dct or rgb input "
                              "(networks on latents: --codec latent)")
    loader = make_loader(spec, samples, train=False, batch_size=batch_size, crop=crop, workers=workers,
                         stats=checkpoint.stats, target=target, skip_bad=skip_bad, strict=strict, transcode=transcode)
    return evaluate_loader(checkpoint.model, task or task_of_model(spec.task), loader, device)


def evaluate_loader(model: torch.nn.Module, task: Task, loader, device: torch.device) -> dict:
    """:func:`cdomain.train.engine.evaluate` of ``model`` on ``loader``, plus how many files the
    loader skipped (``skipped``, with ``skip_bad``) and read through transcoded copies
    (``transcoded``): the counts every sweep point reports, with or without correction."""
    result = evaluate(model, task, loader, device)
    result["skipped"] = loader.skipped
    result["transcoded"] = len({note.path for note in loader.transcoded_files})
    return result


def sweep(
    checkpoints: dict[str, Checkpoint],
    samples: SampleList,
    qualities: Sequence[int] = DEFAULT_QUALITIES,
    *,
    method: str = "pixel",
    crop: int | None = None,
    batch_size: int = 64,
    workers: int = 0,
    include_original: bool = True,
    device: torch.device = torch.device("cpu"),
    progress=None,
    target=None,
    skip_bad: bool = False,
    strict: bool = True,
    transcode=None,
    coarse: Sequence[int] | None = None,
    correction: Checkpoint | None = None,
) -> list[SweepPoint]:
    """Evaluate every checkpoint at every quality (and on the original files).

    ``coarse`` (the coarse class of each fine class) also reports each classifier's coarse accuracy.
    ``correction`` (an artifact corrector, :mod:`cdomain.train.correction`) is put in front of
    every checkpoint on the re-encoded images; the original files are evaluated without it.
    """
    task = CoarseClassification("classification", "classification", "acc", True, "%", tuple(coarse)) \
        if coarse is not None else None
    points = []
    levels: list[int | None] = ([None] if include_original else []) + list(qualities)
    for quality in levels:
        data = samples if quality is None else reencoded_samples(samples, quality, method, strict=strict,
                                                                 transcode=transcode, workers=workers)
        mean_bytes, bpp = compressed_size(data, skip_bad, strict, transcode)
        # One set of reading and scoring options for both paths: --lenient, --transcode and a
        # label map's coarse scoring apply alike with and without correction.
        options = dict(crop=crop, batch_size=batch_size, workers=workers, device=device, target=target,
                       skip_bad=skip_bad, strict=strict, transcode=transcode, task=task)
        for name, checkpoint in checkpoints.items():
            if correction is not None and quality is not None:
                from cdomain.train.correction import evaluate_corrected

                result = evaluate_corrected(checkpoint, correction, samples, data, **options)
            else:
                result = evaluate_checkpoint(checkpoint, data, **options)
            metric = metric_of(checkpoint)
            point = SweepPoint(name, quality, metric, metric_value(checkpoint, result), result["loss"], mean_bytes, bpp,
                               result["images"], result["skipped"], result.get("mse") if metric == "mae" else None,
                               result.get("transcoded", 0), result.get("top5"), result.get("coarse_acc"))
            points.append(point)
            if progress is not None:
                progress(point)
    return points


def write_results(points: list[SweepPoint], output: str | os.PathLike[str], *,
                  title: str = "metric vs JPEG compression", figure: bytes | None = None) -> dict[str, Path]:
    """Write ``sweep.csv``, ``sweep.json`` and ``sweep.png`` (``figure``, default metric vs mean size) into ``output``."""
    output = Path(output)
    rows = [asdict(point) for point in points]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    written = {
        "csv": atomic_write(output / "sweep.csv", buffer.getvalue()),
        "json": atomic_write(output / "sweep.json", json.dumps(rows, indent=2)),
    }
    written["png"] = atomic_write(output / "sweep.png", plot(points, title) if figure is None else figure)
    return written


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(figure) -> bytes:
    """``figure`` laid out and rendered as PNG bytes; the figure is closed."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot().close(figure)
    return buffer.getvalue()


def plot(points: list[SweepPoint], title: str = "metric vs JPEG compression") -> bytes:
    """PNG bytes: one curve per checkpoint, metric against mean compressed size."""
    figure, axes = pyplot().subplots(figsize=(6.4, 4.2), dpi=120)
    for name in dict.fromkeys(point.checkpoint for point in points):
        curve = sorted((p for p in points if p.checkpoint == name and p.quality is not None), key=lambda p: p.mean_bytes)
        axes.plot([p.mean_bytes / 1024 for p in curve], [p.value for p in curve], marker="o", label=name)
        for p in curve:
            axes.annotate(f"q{p.quality}", (p.mean_bytes / 1024, p.value), fontsize=7, xytext=(3, -9),
                          textcoords="offset points")
    axes.set_xlabel("mean compressed size per image (KiB)")
    axes.set_ylabel(METRIC_LABELS.get(points[0].metric, points[0].metric))
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return png_bytes(figure)
