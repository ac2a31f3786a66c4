"""Gaussian density maps from point annotations, the targets of density-map crowd counting.

Each head point becomes a 2-D Gaussian of unit mass (Zhang et al. 2016, MCNN; Li et al. 2018,
CSRNet use the same targets); the count of a region is the sum of its density map. Maps are
built directly on the network's output grid (one cell per ``stride`` x ``stride`` pixels, 8 =
the JPEG block grid): each cell holds the exact integral of the Gaussians over its pixels,
computed separably with the error function. This equals rendering the map at full resolution
and sum-pooling it by ``stride``, with no sampling error.

Each Gaussian is truncated at the region's border and renormalised to unit mass inside it, so
a map's sum is exactly the number of points inside the region, whatever the crop; points
outside the region contribute nothing, even when their Gaussian would reach into it.

Coordinates are continuous pixels: the image spans ``[0, width) x [0, height)`` and pixel
``(row i, column j)`` covers ``[j, j + 1) x [i, i + 1)``; a point is inside a region when
``left <= x < left + width`` and ``top <= y < top + height``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from cdomain.data.dct_transforms import Region

__all__ = ["DensityTarget", "adaptive_sigmas", "density_map", "density_target", "points_in_region"]

_erf = np.frompyfunc(math.erf, 1, 1)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(z / math.sqrt(2.0)).astype(np.float64))


def _axis_weights(positions: np.ndarray, extent: int, stride: int, sigma: float | np.ndarray) -> np.ndarray:
    """``[N, cells]``: each point's Gaussian mass per cell along one axis, renormalised to 1 inside.

    ``sigma`` is one width for every point or one per point (``[N]``).
    """
    edges = np.minimum(np.arange(0, -(-extent // stride) + 1) * stride, extent).astype(np.float64)
    sigma = np.asarray(sigma, dtype=np.float64).reshape(-1, 1) if np.ndim(sigma) else float(sigma)
    cdf = _normal_cdf((edges[None, :] - positions[:, None]) / sigma)
    weights = np.diff(cdf, axis=1)
    return weights / weights.sum(axis=1, keepdims=True)


def density_map(points: np.ndarray, height: int, width: int, stride: int = 8,
                sigma: float | np.ndarray = 4.0) -> np.ndarray:
    """Density map of ``points`` (``[N, 2]`` of ``(x, y)`` in the region's own pixel coordinates).

    Returns float32 ``[1, ceil(height / stride), ceil(width / stride)]`` whose sum is the number
    of points inside ``[0, width) x [0, height)``. ``sigma`` is the Gaussians' standard deviation
    in pixels: one for all points, or one per point (``[N]``, the geometry-adaptive kernels of
    :func:`adaptive_sigmas`).
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    per_point = np.ndim(sigma) > 0
    sigma = np.asarray(sigma, dtype=np.float64).reshape(-1) if per_point else float(sigma)
    if not np.all(np.asarray(sigma) > 0):
        raise ValueError(f"sigma must be > 0 pixels, got {np.min(sigma)}")
    cells_y, cells_x = -(-height // stride), -(-width // stride)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if per_point and len(sigma) != len(points):
        raise ValueError(f"{len(sigma)} sigmas for {len(points)} points")
    x, y = points[:, 0], points[:, 1]
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    points = points[inside]
    if per_point:
        sigma = sigma[inside]
    if len(points) == 0:
        return np.zeros((1, cells_y, cells_x), dtype=np.float32)
    wx = _axis_weights(points[:, 0], width, stride, sigma)
    wy = _axis_weights(points[:, 1], height, stride, sigma)
    return np.einsum("ny,nx->yx", wy, wx).astype(np.float32)[None]


def adaptive_sigmas(points: np.ndarray, beta: float = 0.3, k: int = 3, fallback: float = 15.0,
                    minimum: float = 0.1) -> np.ndarray:
    """Geometry-adaptive Gaussian widths (Zhang et al. 2016; CSRNet's recipe for Part A):
    ``sigma_i = beta * mean distance from head i to its k nearest other heads``.

    An image with fewer than ``k + 1`` heads averages over the heads it has; a lone head gets
    ``fallback`` pixels. Widths are at least ``minimum`` pixels (duplicate annotations would
    otherwise give zero). Exact nearest neighbours, computed blockwise in ``O(N^2)`` time and
    ``O(1024 N)`` memory. Returns float64 ``[N]``.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    count = len(points)
    if count == 0:
        return np.zeros(0)
    if count == 1:
        return np.full(1, max(float(fallback), minimum))
    neighbours = min(int(k), count - 1)
    sigmas = np.empty(count)
    for start in range(0, count, 1024):
        block = points[start:start + 1024]
        distance = np.hypot(block[:, None, 0] - points[None, :, 0], block[:, None, 1] - points[None, :, 1])
        distance[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf  # not its own neighbour
        nearest = np.partition(distance, neighbours - 1, axis=1)[:, :neighbours]
        sigmas[start:start + len(block)] = beta * nearest.mean(axis=1)
    return np.maximum(sigmas, minimum)


def _inside(points: np.ndarray, region: Region) -> np.ndarray:
    x = points[:, 0] - region.left
    y = points[:, 1] - region.top
    return (x >= 0) & (x < region.width) & (y >= 0) & (y < region.height)


def clamp_to_region(points: np.ndarray, region: Region) -> np.ndarray:
    """``points`` (source coordinates) moved onto ``region``'s nearest edge where they lie outside.

    Whole-image evaluation uses this so that a map counts every annotated head, also those
    annotated just outside the image or in the border trimmed to whole MCUs.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2).copy()
    right = np.nextafter(float(region.left + region.width), -np.inf)
    bottom = np.nextafter(float(region.top + region.height), -np.inf)
    points[:, 0] = np.clip(points[:, 0], region.left, right)
    points[:, 1] = np.clip(points[:, 1], region.top, bottom)
    return points


def points_in_region(points: np.ndarray, region: Region) -> np.ndarray:
    """``points`` (``[N, 2]``, source-image ``(x, y)``) moved into ``region``'s own coordinates.

    The crop shifts them by ``(-left, -top)``; a flipped region mirrors them, ``x -> width - x``
    (pixel column ``j`` of the crop becomes column ``width - 1 - j``). Points outside the
    region are dropped, so the result has as many points as the region holds.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x = points[:, 0] - region.left
    y = points[:, 1] - region.top
    inside = (x >= 0) & (x < region.width) & (y >= 0) & (y < region.height)
    x, y = x[inside], y[inside]
    if region.flipped:  # a point on the left edge (x = 0) stays just inside the right edge
        x = np.minimum(region.width - x, np.nextafter(float(region.width), 0.0))
    return np.stack([x, y], axis=1)


class DensityTarget:
    """``target(index, region)`` for :class:`cdomain.data.loader.DCTLoader` / ``RGBLoader``:
    the density map of sample ``index``'s points inside the loader's crop ``region``.

    ``sigmas`` (optional) gives each sample's per-point widths (geometry-adaptive kernels);
    ``clamp`` moves heads outside the region onto its edge first, so that whole-image
    evaluation counts every annotated head (see :func:`clamp_to_region`).
    A plain class rather than a closure so that loader worker processes can pickle it.
    """

    def __init__(self, points: Sequence[np.ndarray], stride: int = 8, sigma: float = 4.0,
                 sigmas: Sequence[np.ndarray] | None = None, clamp: bool = False):
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0 pixels, got {sigma}")
        self.points = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in points]
        self.stride, self.sigma = int(stride), float(sigma)
        self.sigmas = None if sigmas is None else [np.asarray(s, dtype=np.float64).reshape(-1) for s in sigmas]
        if self.sigmas is not None and [len(s) for s in self.sigmas] != [len(p) for p in self.points]:
            raise ValueError("sigmas must give one width per point of every sample")
        self.clamp = bool(clamp)

    def __len__(self) -> int:
        return len(self.points)

    def __call__(self, index: int, region: Region) -> np.ndarray:
        points = self.points[index]
        if self.clamp:
            points = clamp_to_region(points, region)
        local = points_in_region(points, region)
        sigma: float | np.ndarray = self.sigma
        if self.sigmas is not None:
            sigma = self.sigmas[index][_inside(points, region)]
        return density_map(local, region.height, region.width, self.stride, sigma)

    def count(self, index: int, region: Region | None = None) -> int:
        """People of sample ``index`` inside ``region`` (all of them when None)."""
        if region is None or self.clamp:
            return len(self.points[index])
        return len(points_in_region(self.points[index], region))


def density_target(points: Sequence[np.ndarray], stride: int = 8, sigma: float = 4.0) -> DensityTarget:
    """The loader target for per-image head ``points``: float32 ``[1, h / stride, w / stride]``
    density maps of each sample's crop, summing to the number of heads inside it.

    ``sigma`` (pixels) is the Gaussian width; 4 px spreads a head over about two 8-px cells.
    """
    return DensityTarget(points, stride, sigma)
