"""ShanghaiTech Part A / Part B (Zhang et al. 2016, MCNN).

Layout (``root`` is ``part_A`` or ``part_B``, or their ``..._final`` variants)::

    train_data/images/IMG_1.jpg     train_data/ground-truth/GT_IMG_1.mat
    test_data/images/IMG_1.jpg      test_data/ground-truth/GT_IMG_1.mat

Each ``.mat`` holds ``image_info{1,1}``, a struct with ``location`` (N x 2, x then y, pixels)
and ``number``. The release stores the struct inside a 1 x 1 cell; resaved copies often store
the struct directly. Both are read: the reader descends cells and structs to ``location``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cdomain.errors import DataError

from .common import RawSplits, annotation, check_points, load_mat, read_splits

NAME = "shanghaitech"
LAYOUT = "train_data/images/IMG_1.jpg + train_data/ground-truth/GT_IMG_1.mat, and test_data/"
SPLITS = {"train": "train_data", "test": "test_data"}


def detect(root: Path) -> bool:
    return all((root / folder / "images").is_dir() and (root / folder / "ground-truth").is_dir()
               for folder in SPLITS.values())


def defaults(root: Path) -> dict:
    """Part B (a folder named part_B...): 10% validation, fixed sigma 15; Part A: 20%, adaptive."""
    if "part_b" in root.resolve().name.lower():
        return {"val_fraction": 0.1, "density": "fixed", "sigma": 15.0}
    return {"val_fraction": 0.2, "density": "adaptive", "sigma": 15.0}


def _find_location(value, depth: int = 0):
    """Descend object arrays (cells) and structured arrays (structs) to the ``location`` field."""
    if depth > 8 or not isinstance(value, np.ndarray):
        return None
    if value.dtype.names:
        if "location" in value.dtype.names:
            return value.reshape(-1)[0]["location"]
        for name in value.dtype.names:
            found = _find_location(value.reshape(-1)[0][name], depth + 1)
            if found is not None:
                return found
        return None
    if value.dtype == object:
        for item in value.reshape(-1):
            found = _find_location(item, depth + 1)
            if found is not None:
                return found
    return None


def read_points(path: Path) -> np.ndarray:
    """Head points ``[N, 2]`` (x, y) of one ``GT_*.mat`` file."""
    mat = load_mat(path)
    if "image_info" not in mat:
        raise DataError(f"{path}: no image_info variable (found {', '.join(k for k in mat if not k.startswith('__'))})")
    location = _find_location(mat["image_info"])
    if location is None:
        raise DataError(f"{path}: image_info has no location field")
    return check_points(location, path)


def read(root: Path) -> RawSplits:
    return read_splits({split: root / folder / "images" for split, folder in SPLITS.items()},
                       lambda image: annotation(image.parent.parent / "ground-truth", image, f"GT_{image.stem}.mat"),
                       read_points)
