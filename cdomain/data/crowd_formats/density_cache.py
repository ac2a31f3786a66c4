"""Per-dataset density-map kernels, computed once and cached atomically.

The costly part of geometry-adaptive targets is the nearest-neighbour search over every
image's heads (thousands per image in UCF-QNRF and JHU-CROWD++). The per-head widths are
therefore computed once per dataset split and recipe and kept in
``$CDOMAIN_DATA/crowd-kernels/<digest>.safetensors`` (written atomically; read back with
safetensors, no pickles). The digest covers the points themselves and the recipe, so a changed
annotation or recipe never reads a stale file. The maps are then integrated exactly for every
crop the loader cuts (:mod:`cdomain.data.density`), so they sum to the heads inside the crop.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from cdomain.atomic import atomic_write
from cdomain.data.density import DensityTarget, adaptive_sigmas
from cdomain.data.embedded import data_dir
from cdomain.errors import DataError

__all__ = ["DENSITY_METHODS", "DensityRecipe", "kernel_widths", "make_target"]

DENSITY_METHODS = ("adaptive", "fixed")
CACHE_FOLDER = "crowd-kernels"


@dataclass(frozen=True)
class DensityRecipe:
    """How heads become Gaussians: ``adaptive`` (beta x mean distance to the k nearest heads)
    or ``fixed`` (``sigma`` pixels for every head)."""

    method: str = "adaptive"
    sigma: float = 15.0  # fixed width; also the width of a lone head under ``adaptive``
    beta: float = 0.3
    k: int = 3

    def __post_init__(self) -> None:
        if self.method not in DENSITY_METHODS:
            raise DataError(f"density method must be one of {', '.join(DENSITY_METHODS)}, got {self.method!r}")
        if not self.sigma > 0:
            raise DataError(f"density sigma must be > 0 pixels, got {self.sigma}")


def _digest(points: Sequence[np.ndarray], recipe: DensityRecipe) -> str:
    hasher = hashlib.sha256(json.dumps([recipe.method, recipe.sigma, recipe.beta, recipe.k, "v1"]).encode())
    for array in points:
        array = np.ascontiguousarray(array, dtype=np.float64)
        hasher.update(np.int64(len(array)).tobytes())
        hasher.update(array.tobytes())
    return hasher.hexdigest()[:32]


def kernel_widths(points: Sequence[np.ndarray], recipe: DensityRecipe) -> list[np.ndarray]:
    """Per-head widths of every image under an adaptive recipe, from the cache when present."""
    from safetensors.numpy import load, save

    path = data_dir() / CACHE_FOLDER / f"{_digest(points, recipe)}.safetensors"
    counts = np.asarray([len(p) for p in points], dtype=np.int64)
    if path.is_file():
        try:
            stored = load(path.read_bytes())
            if np.array_equal(stored["counts"], counts):
                return np.split(stored["sigmas"].astype(np.float64), np.cumsum(counts)[:-1])
        except Exception:  # a damaged cache file is recomputed and replaced
            pass
    widths = [adaptive_sigmas(p, recipe.beta, recipe.k, fallback=recipe.sigma) for p in points]
    flat = np.concatenate(widths) if widths else np.zeros(0)
    atomic_write(path, save({"sigmas": flat.astype(np.float64), "counts": counts}))
    return widths


def make_target(points: Sequence[np.ndarray], recipe: DensityRecipe, *, evaluation: bool,
                stride: int = 8) -> DensityTarget:
    """The loader target of one split: density maps on the ``stride`` grid of each crop.

    ``evaluation`` targets count every annotated head of the (whole) image, see
    :class:`~cdomain.data.density.DensityTarget`'s ``clamp``.
    """
    sigmas = kernel_widths(points, recipe) if recipe.method == "adaptive" else None
    return DensityTarget(points, stride=stride, sigma=recipe.sigma, sigmas=sigmas, clamp=evaluation)
