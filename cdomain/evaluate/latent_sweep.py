"""Codec sweeps: a latent-input network's metric against the real size of learned-codec bitstreams.

The learned-codec counterpart of :mod:`cdomain.evaluate.sweep` (``cdomain-eval --codec latent``).
For every codec (one per quality, e.g. ``cdomain-prepare codec --quality Q``) the validation
images are written once as bitstream files (:func:`cdomain.latents.compress.compress_samples`,
resumable, into ``work/<codec name>/``), then every checkpoint is evaluated on latents read
straight from those files (:class:`~cdomain.latents.bitstream_files.BitstreamFiles`: entropy
decoding, no ``g_s``), and the metric is reported beside the mean file size and the real bits per
pixel of the files (whole files, header included). The points are
:class:`~cdomain.evaluate.sweep.SweepPoint` with the codec's quality, so
:func:`~cdomain.evaluate.sweep.write_results` writes them like the JPEG sweep's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from cdomain.checkpoint import Checkpoint
from cdomain.data.folder import SampleList
from cdomain.data.inputs import make_loader
from cdomain.errors import CheckpointError, ConfigError
from cdomain.evaluate.sweep import SweepPoint, metric_of
from cdomain.train.engine import evaluate, task_of_model


def codec_names(paths: list[Path]) -> dict[str, Path]:
    """Short unique names for codec files: the file stem, or the path where stems collide."""
    names = [path.stem for path in paths]
    if len(set(names)) < len(names):
        names = [str(path).replace(os.sep, "_") for path in paths]
    return dict(zip(names, paths))


def check_latent_checkpoint(checkpoint: Checkpoint, codec: torch.nn.Module, codec_name: str) -> None:
    """A checkpoint must read latents, with as many channels as ``codec`` gives."""
    spec = checkpoint.input_spec
    if spec is None or spec.input != "latent":
        kind = "a codec" if spec is None else f"a network on {spec.input} input"
        raise CheckpointError(f"{checkpoint.path}: {kind}; --codec latent evaluates networks on latent input")
    channels = spec.channels[0] if isinstance(spec.channels, tuple) else spec.channels
    if channels != int(codec.M):
        raise CheckpointError(f"{checkpoint.path}: reads {channels} latent channels, codec {codec_name} gives "
                              f"{int(codec.M)}")


def latent_sweep(
    checkpoints: dict[str, Checkpoint],
    samples: SampleList,
    codecs: dict[str, Path],
    work: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    workers: int = 0,
    latent_resize: int | None = 32,
    latent_crop: int | None = 28,
    device: torch.device = torch.device("cpu"),
    progress: Callable[[SweepPoint], None] | None = None,
    show_bars: bool = False,
    skip_bad: bool = False,
) -> list[SweepPoint]:
    """Evaluate every checkpoint on ``samples`` compressed by every codec (name -> codec file).

    The bitstreams go to ``work/<codec name>/<class>/<image>.cdlb`` and are kept: a rerun reuses
    the complete ones.
    """
    from cdomain.latents.bitstream_files import BitstreamFiles
    from cdomain.latents.codecs import load_codec
    from cdomain.latents.compress import compress_samples

    if not codecs:
        raise ConfigError("--codecs", "--codec latent needs at least one codec file")
    loaded = {name: load_codec(path) for name, path in codecs.items()}
    for name, codec in loaded.items():
        for checkpoint in checkpoints.values():
            check_latent_checkpoint(checkpoint, codec, name)
    points = []
    for name, codec in loaded.items():
        folder = Path(work) / name
        summary = compress_samples(codec, samples, folder, workers=workers, progress=show_bars,
                                   desc=f"compress {name}")
        files = BitstreamFiles(folder, codec)
        mean_bytes = summary["bytes"] / summary["files"]
        quality = codec.cdomain_config.get("quality")
        for label, checkpoint in checkpoints.items():
            spec = checkpoint.input_spec
            loader = make_loader(spec, files, train=False, batch_size=batch_size, workers=workers,
                                 latent_resize=latent_resize, latent_crop=latent_crop, skip_bad=skip_bad)
            result = evaluate(checkpoint.model, task_of_model(spec.task), loader, device)
            metric = metric_of(checkpoint)
            value = result["mae"] if metric == "mae" else result["acc"]
            point = SweepPoint(label, quality, metric, value, result["loss"], mean_bytes, files.index["bpp"],
                               result["images"], loader.skipped)
            points.append(point)
            if progress is not None:
                progress(point)
    return points
