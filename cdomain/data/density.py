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

__all__ = ["DensityTarget", "density_map", "density_target", "points_in_region"]

_erf = np.frompyfunc(math.erf, 1, 1)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(z / math.sqrt(2.0)).astype(np.float64))


def _axis_weights(positions: np.ndarray, extent: int, stride: int, sigma: float) -> np.ndarray:
    """``[N, cells]``: each point's Gaussian mass per cell along one axis, renormalised to 1 inside."""
    edges = np.minimum(np.arange(0, -(-extent // stride) + 1) * stride, extent).astype(np.float64)
    cdf = _normal_cdf((edges[None, :] - positions[:, None]) / sigma)
    weights = np.diff(cdf, axis=1)
    return weights / weights.sum(axis=1, keepdims=True)


def density_map(points: np.ndarray, height: int, width: int, stride: int = 8, sigma: float = 4.0) -> np.ndarray:
    """Density map of ``points`` (``[N, 2]`` of ``(x, y)`` in the region's own pixel coordinates).

    Returns float32 ``[1, ceil(height / stride), ceil(width / stride)]`` whose sum is the number
    of points inside ``[0, width) x [0, height)``. ``sigma`` is the Gaussians' standard deviation
    in pixels.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 pixels, got {sigma}")
    cells_y, cells_x = -(-height // stride), -(-width // stride)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x, y = points[:, 0], points[:, 1]
    points = points[(x >= 0) & (x < width) & (y >= 0) & (y < height)]
    if len(points) == 0:
        return np.zeros((1, cells_y, cells_x), dtype=np.float32)
    wx = _axis_weights(points[:, 0], width, stride, sigma)
    wy = _axis_weights(points[:, 1], height, stride, sigma)
    return np.einsum("ny,nx->yx", wy, wx).astype(np.float32)[None]


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

    A plain class rather than a closure so that loader worker processes can pickle it.
    """

    def __init__(self, points: Sequence[np.ndarray], stride: int = 8, sigma: float = 4.0):
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0 pixels, got {sigma}")
        self.points = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in points]
        self.stride, self.sigma = int(stride), float(sigma)

    def __len__(self) -> int:
        return len(self.points)

    def __call__(self, index: int, region: Region) -> np.ndarray:
        local = points_in_region(self.points[index], region)
        return density_map(local, region.height, region.width, self.stride, self.sigma)

    def count(self, index: int, region: Region | None = None) -> int:
        """People of sample ``index`` inside ``region`` (all of them when None)."""
        if region is None:
            return len(self.points[index])
        return len(points_in_region(self.points[index], region))


def density_target(points: Sequence[np.ndarray], stride: int = 8, sigma: float = 4.0) -> DensityTarget:
    """The loader target for per-image head ``points``: float32 ``[1, h / stride, w / stride]``
    density maps of each sample's crop, summing to the number of heads inside it.

    ``sigma`` (pixels) is the Gaussian width; 4 px spreads a head over about two 8-px cells.
    """
    return DensityTarget(points, stride, sigma)
