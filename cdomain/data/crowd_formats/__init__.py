"""Readers for the published on-disk layouts of real crowd-counting datasets.

Each format module has ``NAME``, ``detect(root) -> bool`` and ``read(root) -> RawSplits``: the
official splits of the dataset under ``root`` as image paths and head points ``[N, 2]`` of
``(x, y)`` pixels, in the order of the file names. :func:`read_crowd_folder` picks the format
(auto-detected, or by name), carves a seeded validation split from the training images where
the release has none, and returns a :class:`CrowdFolder`.

Formats: ``shanghaitech`` (Part A or Part B), ``qnrf`` (UCF-QNRF), ``jhu`` (JHU-CROWD++) and
``points`` (the generic ``images/`` + ``points/<stem>.json|.csv`` layout, also the one to use
for DISCO, whose on-disk release is not documented publicly in a form that can be pinned down).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cdomain.errors import DataError

from . import generic, jhu, qnrf, shanghaitech
from .common import RawSplits

__all__ = ["FORMATS", "CrowdFolder", "carve_validation", "detect_format", "read_crowd_folder"]

#: Format name -> reader module, in the order auto-detection tries them.
FORMATS = {module.NAME: module for module in (shanghaitech, qnrf, jhu, generic)}


@dataclass(frozen=True)
class CrowdFolder:
    """A real crowd dataset read from disk: per split, image paths and head points."""

    root: Path
    format: str
    splits: dict[str, tuple[list[str], list[np.ndarray]]]
    val_source: str  # "official" or "carved <fraction> of train, seed <seed>"
    density: str  # the format's default density-map recipe: "adaptive" or "fixed"
    sigma: float  # its default fixed sigma (pixels)


def detect_format(root: Path) -> str:
    """The name of the format whose layout ``root`` has; DataError naming the layouts otherwise."""
    found = [name for name, module in FORMATS.items() if module.detect(root)]
    if not found:
        layouts = "; ".join(f"{name}: {module.LAYOUT}" for name, module in FORMATS.items())
        raise DataError(f"{root}: not a crowd dataset folder in a known layout ({layouts})")
    return found[0]


def carve_validation(count: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split of ``count`` training images: ``(train indices, val indices)``, both sorted.

    ``round(fraction * count)`` images (at least one, when there are two or more) go to
    validation, chosen by a permutation from ``numpy.random.default_rng(seed)``.
    """
    if not 0 < fraction < 1:
        raise DataError(f"the validation fraction must be in (0, 1), got {fraction}")
    take = int(round(fraction * count))
    if count >= 2:
        take = min(max(take, 1), count - 1)
    else:
        take = 0
    order = np.random.default_rng(seed).permutation(count)
    return sorted(order[take:].tolist()), sorted(order[:take].tolist())


def read_crowd_folder(root: str | Path, format: str | None = None, *, val_fraction: float | None = None,
                      seed: int = 0) -> CrowdFolder:
    """Read the crowd dataset under ``root`` (``format`` None: auto-detect).

    Splits: ``train``, ``val`` and ``test``. The official test split is kept for final figures;
    ``val`` is the release's own where it has one (JHU-CROWD++), else a seeded ``val_fraction``
    of the training images (default: the format's, 20% for ShanghaiTech Part A, 10% otherwise).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    if format is None:
        format = detect_format(root)
    elif format not in FORMATS:
        raise DataError(f"--format {format!r}: unknown; known formats: {', '.join(FORMATS)}")
    module = FORMATS[format]
    if not module.detect(root):
        raise DataError(f"{root}: not in the {format} layout ({module.LAYOUT})")
    raw: RawSplits = module.read(root)
    defaults = module.defaults(root)
    splits = {name: raw[name] for name in ("train", "test") if name in raw}
    if "train" not in splits or not splits["train"][0]:
        raise DataError(f"{root}: no training images found ({module.LAYOUT})")
    if "test" not in splits:
        raise DataError(f"{root}: no test split found ({module.LAYOUT})")
    if "val" in raw and val_fraction is None:
        splits["val"] = raw["val"]
        source = "official"
    else:
        fraction = val_fraction if val_fraction is not None else defaults["val_fraction"]
        paths, points = raw["train"]
        keep, val = carve_validation(len(paths), fraction, seed)
        if not val:
            raise DataError(f"{root}: too few training images ({len(paths)}) to carve a validation split from")
        splits["train"] = ([paths[i] for i in keep], [points[i] for i in keep])
        splits["val"] = ([paths[i] for i in val], [points[i] for i in val])
        source = f"carved {fraction:g} of train, seed {seed}"
    return CrowdFolder(root, format, splits, source, defaults["density"], defaults["sigma"])


@dataclass(frozen=True)
class CrowdOptions:
    """What the training config says about a real crowd dataset (None: the format's default)."""

    val_fraction: float | None = None
    seed: int = 0
    density: str | None = None  # "adaptive" or "fixed"
    sigma: float | None = None  # pixels
    max_side: int | None = None  # downscale images whose longer side exceeds this (resize.cap_images)


def open_crowd(root: str | Path, format: str | None = None, options: CrowdOptions | None = None):
    """``(folder, splits, targets)`` for the registry: SampleLists and density targets per split.

    Training targets drop heads outside each crop; ``val`` and ``test`` targets are for
    whole-image evaluation and count every annotated head.
    """
    from cdomain.data.folder import SampleList

    from .density_cache import DensityRecipe, make_target

    options = options or CrowdOptions()
    folder = read_crowd_folder(root, format, val_fraction=options.val_fraction, seed=options.seed)
    if options.max_side is not None:
        import sys

        from .resize import cap_images

        folder = replace(folder, splits=cap_images(folder.splits, options.max_side, progress=sys.stderr.isatty()))
    recipe = DensityRecipe(options.density or folder.density, options.sigma if options.sigma is not None else folder.sigma)
    splits, targets = {}, {}
    for name, (paths, points) in folder.splits.items():
        splits[name] = SampleList(tuple(paths), (-1,) * len(paths), ())
        targets[name] = make_target(points, recipe, evaluation=name != "train")
    return folder, splits, targets
