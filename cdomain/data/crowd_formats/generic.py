"""The generic point layout (``--format points``), for any dataset with per-image head points.

Layout, for ``train``, ``test`` and optionally ``val``::

    train/images/<stem>.jpg
    train/points/<stem>.json   a JSON list of [x, y] pairs, or {"points": [[x, y], ...]}
    train/points/<stem>.csv    one "x,y" per line (a header line "x,y" is allowed)

Points are pixels, x to the right and y down. DISCO is read through this layout: convert its
annotations to one JSON or CSV file per image.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cdomain.errors import DataError

from .common import RawSplits, check_points, read_splits, read_text

NAME = "points"
LAYOUT = "train/images/<stem>.jpg + train/points/<stem>.json or .csv, and test/ (val/ optional)"
SPLITS = ("train", "val", "test")


def detect(root: Path) -> bool:
    return all((root / split / "images").is_dir() and (root / split / "points").is_dir() for split in ("train", "test"))


def defaults(root: Path) -> dict:
    return {"val_fraction": 0.1, "density": "adaptive", "sigma": 15.0}


def read_points(path: Path) -> np.ndarray:
    text = read_text(path)
    if path.suffix == ".json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
        if isinstance(value, dict):
            if "points" not in value:
                raise DataError(f"{path}: a JSON object needs a 'points' list")
            value = value["points"]
        if not isinstance(value, list) or any(not isinstance(p, list) or len(p) != 2 for p in value):
            raise DataError(f"{path}: expected a list of [x, y] pairs")
        return check_points(value, path)
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        parts = [part.strip() for part in line.split(",")]
        if not line.strip() or (number == 1 and parts[:2] == ["x", "y"]):
            continue
        try:
            if len(parts) != 2:
                raise ValueError
            rows.append([float(parts[0]), float(parts[1])])
        except ValueError:
            raise DataError(f"{path}: line {number}: expected 'x,y', got {line.strip()!r}") from None
    return check_points(rows, path)


def _annotation(image: Path) -> Path:
    """``<split>/points/<stem>.json`` or ``.csv`` beside ``<split>/images/<stem>.jpg``."""
    candidates = [image.parent.parent / "points" / f"{image.stem}{suffix}" for suffix in (".json", ".csv")]
    found = [path for path in candidates if path.is_file()]
    if not found:
        raise DataError(f"{image}: no annotation file {candidates[0]} or {candidates[1].name}")
    return found[0]


def read(root: Path) -> RawSplits:
    return read_splits({split: root / split / "images" for split in SPLITS}, _annotation, read_points, optional=True)
