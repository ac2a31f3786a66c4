"""JHU-CROWD++ (Sindagi et al. 2020).

Layout, for each of ``train``, ``val`` and ``test``::

    train/images/0001.jpg    train/gt/0001.txt

Each ``gt`` line is one head: ``x y w h o b`` (centre, box size, occlusion level, blur); an
image without people has an empty file. Only ``x y`` are used. The release has its own
validation split, which is used unless a fraction of train is asked for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cdomain.errors import DataError

from .common import RawSplits, annotation, check_points, read_splits, read_text

NAME = "jhu"
LAYOUT = "train/images/0001.jpg + train/gt/0001.txt (x y w h o b per line), and val/, test/"
SPLITS = ("train", "val", "test")


def detect(root: Path) -> bool:
    return all((root / split / "images").is_dir() and (root / split / "gt").is_dir() for split in ("train", "test"))


def defaults(root: Path) -> dict:
    return {"val_fraction": 0.1, "density": "adaptive", "sigma": 15.0}


def read_points(path: Path) -> np.ndarray:
    rows = []
    text = read_text(path)
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise DataError(f"{path}: line {number}: expected 6 values 'x y w h o b', got {len(parts)}")
        try:
            rows.append([float(parts[0]), float(parts[1])])
        except ValueError:
            raise DataError(f"{path}: line {number}: x and y are not numbers") from None
    return check_points(rows, path)


def read(root: Path) -> RawSplits:
    return read_splits({split: root / split / "images" for split in SPLITS},
                       lambda image: annotation(image.parent.parent / "gt", image, f"{image.stem}.txt"),
                       read_points, optional=True)
