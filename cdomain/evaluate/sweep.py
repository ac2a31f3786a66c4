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
from cdomain.train.engine import evaluate
from cdomain.train.engine import task_of_model

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


def compressed_size(samples: SampleList, skip_bad: bool = False) -> tuple[float, float]:
    """Mean file size in bytes and mean bits per pixel of the sample files (readable ones with ``skip_bad``)."""
    sizes, bpp = [], []
    for path in samples.paths:
        try:
            data = Path(path).read_bytes()
            header = parse_header(data, path)
        except (OSError, ValueError):
            if skip_bad:
                continue
            raise
        sizes.append(len(data))
        bpp.append(8 * len(data) / (header.height * header.width))
    return float(np.mean(sizes)), float(np.mean(bpp))


def metric_of(checkpoint: Checkpoint) -> str:
    """The sweep metric of a checkpoint: ``"accuracy"`` for classifiers, ``"mae"`` for counting."""
    return "mae" if checkpoint.header.task == "density" else "accuracy"


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
) -> dict:
    """Loss and metrics of ``checkpoint`` on ``samples``, loaded the way it was trained.

    Classifiers give ``acc``; counting networks (``target`` = the density targets) ``mae``/``mse``.
    """
    spec = checkpoint.input_spec
    if spec is None or spec.input == "latent":
        raise CheckpointError(f"{checkpoint.path}: JPEG quality sweeps need a network on dct or rgb input")
    loader = make_loader(spec, samples, train=False, batch_size=batch_size, crop=crop, workers=workers,
                         stats=checkpoint.stats, target=target, skip_bad=skip_bad)
    result = evaluate(checkpoint.model, task_of_model(spec.task), loader, device)
    result["skipped"] = loader.skipped
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
    correction: Checkpoint | None = None,
) -> list[SweepPoint]:
    """Evaluate every checkpoint at every quality (and on the original files).

    ``correction`` (an artifact corrector, :mod:`cdomain.train.correction`) is put in front of
    every checkpoint on the re-encoded images; the original files are evaluated without it.
    """
    points = []
    levels: list[int | None] = ([None] if include_original else []) + list(qualities)
    for quality in levels:
        data = samples if quality is None else reencoded_samples(samples, quality, method)
        mean_bytes, bpp = compressed_size(data, skip_bad)
        for name, checkpoint in checkpoints.items():
            if correction is not None and quality is not None:
                from cdomain.train.correction import evaluate_corrected

                result = evaluate_corrected(checkpoint, correction, samples, data, crop=crop, batch_size=batch_size,
                                            workers=workers, device=device, target=target, skip_bad=skip_bad)
            else:
                result = evaluate_checkpoint(checkpoint, data, crop=crop, batch_size=batch_size, workers=workers,
                                             device=device, target=target, skip_bad=skip_bad)
            metric = metric_of(checkpoint)
            value = result["mae"] if metric == "mae" else result["acc"]
            point = SweepPoint(name, quality, metric, value, result["loss"], mean_bytes, bpp, result["images"],
                               result["skipped"])
            points.append(point)
            if progress is not None:
                progress(point)
    return points


def write_results(points: list[SweepPoint], output: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``sweep.csv``, ``sweep.json`` and ``sweep.png`` (metric vs mean size) into ``output``."""
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
    written["png"] = atomic_write(output / "sweep.png", plot(points))
    return written


def plot(points: list[SweepPoint]) -> bytes:
    """PNG bytes: one curve per checkpoint, metric against mean compressed size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name in dict.fromkeys(point.checkpoint for point in points):
        curve = sorted((p for p in points if p.checkpoint == name and p.quality is not None), key=lambda p: p.mean_bytes)
        axes.plot([p.mean_bytes / 1024 for p in curve], [p.value for p in curve], marker="o", label=name)
        for p in curve:
            axes.annotate(f"q{p.quality}", (p.mean_bytes / 1024, p.value), fontsize=7, xytext=(3, -9),
                          textcoords="offset points")
    axes.set_xlabel("mean compressed size per image (KiB)")
    axes.set_ylabel("accuracy (%)" if points[0].metric == "accuracy" else "counting MAE (people)")
    axes.set_title("metric vs JPEG compression")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
