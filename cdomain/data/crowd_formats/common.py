"""What the crowd format readers share: JPEG listing, point checks, MATLAB files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from cdomain.errors import DataError

#: split name -> (image paths, head points [N, 2] of (x, y)), in file-name order.
RawSplits = dict[str, tuple[list[str], list[np.ndarray]]]

JPEG_SUFFIXES = (".jpg", ".jpeg")


def jpegs(folder: Path) -> list[Path]:
    """The JPEG files directly in ``folder``, sorted by name (no symlinks out of it followed)."""
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.suffix.lower() in JPEG_SUFFIXES and p.is_file()]
    return sorted(files, key=lambda p: p.name)


def check_points(values: Any, source: Path, columns: int = 2) -> np.ndarray:
    """``values`` as float64 ``[N, 2]`` (the first two of ``columns`` columns); DataError otherwise."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{source}: head points are not numbers") from None
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim == 1 and array.size == columns:
        array = array.reshape(1, columns)
    if array.ndim != 2 or array.shape[1] < 2:
        raise DataError(f"{source}: expected head points as rows of x y, got an array of shape {array.shape}")
    array = array[:, :2]
    if not np.isfinite(array).all():
        raise DataError(f"{source}: head points contain NaN or infinite values")
    return np.ascontiguousarray(array)


def load_mat(path: Path) -> dict:
    """A MATLAB .mat file through ``scipy.io.loadmat`` (no pickles involved); DataError on failure."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DataError(f"{path}: reading .mat annotations needs SciPy (pip install 'cdomain[crowd]')") from None
    if not path.is_file():
        raise DataError(f"{path}: annotation file missing")
    try:
        return loadmat(str(path))
    except Exception as error:  # scipy raises ValueError, TypeError, MatReadError... for damaged files
        raise DataError(f"{path}: not a readable MATLAB file ({type(error).__name__}: {error})") from None


def annotation(folder: Path, image: Path, name: str) -> Path:
    """``folder / name``, which must exist: the annotation of ``image``."""
    path = folder / name
    if not path.is_file():
        raise DataError(f"{image}: no annotation file {path}")
    return path


def read_text(path: Path) -> str:
    """A UTF-8 annotation file's text; DataError naming it when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read ({getattr(error, 'strerror', None) or error})") from None


def read_splits(
    images: Mapping[str, Path],
    annotation_of: Callable[[Path], Path],
    read_points: Callable[[Path], np.ndarray],
    *,
    optional: bool = False,
) -> RawSplits:
    """Every split's JPEGs (``images[split]``, a folder) with the head points of their annotation
    files (``annotation_of(image)``, read by ``read_points``). ``optional``: splits whose image
    folder is missing are left out instead of read as empty."""
    splits: RawSplits = {}
    for split, folder in images.items():
        if optional and not folder.is_dir():
            continue
        files = jpegs(folder)
        splits[split] = ([str(image) for image in files], [read_points(annotation_of(image)) for image in files])
    return splits
