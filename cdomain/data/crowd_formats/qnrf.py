"""UCF-QNRF (Idrees et al. 2018).

Layout::

    Train/img_0001.jpg    Train/img_0001_ann.mat     (annPoints: N x 2, x then y)
    Test/img_0001.jpg     Test/img_0001_ann.mat
"""

from __future__ import annotations

from pathlib import Path

from cdomain.errors import DataError

from .common import RawSplits, annotation, check_points, load_mat, read_splits

NAME = "qnrf"
LAYOUT = "Train/img_0001.jpg + Train/img_0001_ann.mat (annPoints), and Test/"
SPLITS = {"train": "Train", "test": "Test"}


def detect(root: Path) -> bool:
    return all((root / folder).is_dir() for folder in SPLITS.values()) and \
        any((root / "Train").glob("*_ann.mat"))


def defaults(root: Path) -> dict:
    return {"val_fraction": 0.1, "density": "adaptive", "sigma": 15.0}


def read_points(path: Path):
    mat = load_mat(path)
    if "annPoints" not in mat:
        raise DataError(f"{path}: no annPoints variable")
    return check_points(mat["annPoints"], path)


def read(root: Path) -> RawSplits:
    return read_splits({split: root / folder for split, folder in SPLITS.items()},
                       lambda image: annotation(image.parent, image, f"{image.stem}_ann.mat"), read_points)
