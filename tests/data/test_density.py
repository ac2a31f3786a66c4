"""Gaussian density maps: hand-checked values, exact counts, crops, flips and padding."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from cdomain.data.dct_transforms import Region
from cdomain.data.density import DensityTarget, density_map, density_target, points_in_region


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_one_head_in_the_middle():
    """A head at the centre of a 64 px region (a cell corner) with sigma 4 px: the four middle
    cells each hold (Phi(2) - Phi(0))^2 of it, the map is symmetric and sums to one."""
    density = density_map(np.array([[32.0, 32.0]]), 64, 64, stride=8, sigma=4.0)
    assert density.shape == (1, 8, 8) and density.dtype == np.float32
    centre = (_phi(2.0) - _phi(0.0)) ** 2 / (_phi(8.0) - _phi(-8.0)) ** 2
    assert density[0, 3:5, 3:5] == pytest.approx(np.full((2, 2), centre), rel=1e-5)
    assert density.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(density, density[:, ::-1, :]) and np.allclose(density, density[:, :, ::-1])
    assert np.allclose(density[0], density[0].T)


def test_head_near_an_edge_is_renormalised_inside_the_region():
    """At (1, 1) most of the Gaussian would fall outside; truncated and renormalised, the corner
    cell holds ((Phi(7/4) - Phi(-1/4)) / (Phi(63/4) - Phi(-1/4)))^2 and the map still sums to 1."""
    density = density_map(np.array([[1.0, 1.0]]), 64, 64, stride=8, sigma=4.0)
    corner = ((_phi(7 / 4) - _phi(-1 / 4)) / (_phi(63 / 4) - _phi(-1 / 4))) ** 2
    assert density[0, 0, 0] == pytest.approx(corner, rel=1e-5)
    assert density.sum() == pytest.approx(1.0, abs=1e-6)


def test_points_outside_contribute_nothing_and_edges_are_half_open():
    points = np.array([[0.0, 0.0], [63.99, 10.0], [64.0, 10.0], [-0.01, 5.0], [10.0, 70.0]])
    assert density_map(points, 64, 64).sum() == pytest.approx(2.0, abs=1e-5)
    assert density_map(np.zeros((0, 2)), 40, 24).shape == (1, 5, 3)
    assert density_map(np.zeros((0, 2)), 40, 24).sum() == 0


def test_partial_cells_and_other_strides():
    density = density_map(np.array([[5.0, 3.0], [19.0, 9.0]]), 12, 20, stride=8, sigma=2.0)
    assert density.shape == (1, 2, 3) and density.sum() == pytest.approx(2.0, abs=1e-5)
    fine = density_map(np.array([[5.0, 3.0]]), 12, 20, stride=1, sigma=2.0)
    assert fine.shape == (1, 12, 20) and fine.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.unravel_index(fine.argmax(), fine.shape) == (0, 2, 4)  # pixel (row 2, column 4) holds (5, 3)
    with pytest.raises(ValueError, match="sigma"):
        density_map(np.zeros((1, 2)), 8, 8, sigma=0)
    with pytest.raises(ValueError, match="stride"):
        density_target([np.zeros((1, 2))], stride=0)


def test_sum_equals_the_count_inside_any_region():
    rng = np.random.default_rng(0)
    points = rng.uniform(-10, 110, size=(80, 2))
    target = density_target([points], sigma=3.0)
    for _ in range(20):
        top, left = (int(v) * 16 for v in rng.integers(-2, 5, size=2))
        region = Region(top, left, 48, 64, flipped=bool(rng.integers(2)))
        inside = ((points[:, 0] >= left) & (points[:, 0] < left + 64) & (points[:, 1] >= top) & (points[:, 1] < top + 48))
        assert target.count(0, region) == inside.sum()
        assert target(0, region).sum() == pytest.approx(inside.sum(), abs=1e-4)
    assert target.count(0) == 80 and len(target) == 1


def test_flipped_region_mirrors_the_map():
    points = np.array([[3.0, 5.0], [30.5, 17.0], [47.0, 40.0], [50.0, 2.0]])
    target = density_target([points])
    plain = target(0, Region(0, 0, 48, 64))
    flipped = target(0, Region(0, 0, 48, 64, flipped=True))
    np.testing.assert_allclose(flipped, plain[:, :, ::-1], atol=1e-6)
    # the brief's pixel rule: column j of the crop becomes column width - 1 - j
    local = points_in_region(np.array([[10.25, 3.0]]), Region(0, 4, 16, 32, flipped=True))
    assert int(local[0, 0]) == 32 - 1 - int(10.25 - 4)
    # a point on the crop's left edge lands just inside its right edge, not outside
    edge = points_in_region(np.array([[4.0, 3.0]]), Region(0, 4, 16, 32, flipped=True))
    assert 31 < edge[0, 0] < 32


def test_crop_offsets_and_padding_shift_the_points():
    points = np.array([[20.0, 44.0]])
    target = density_target([points])
    cropped = target(0, Region(16, 8, 32, 32))  # the head sits at (12, 28) in the crop
    np.testing.assert_allclose(cropped, density_map(np.array([[12.0, 28.0]]), 32, 32), atol=1e-7)
    padded = target(0, Region(-16, -16, 96, 96))  # a small image centred on a padded canvas
    np.testing.assert_allclose(padded, density_map(np.array([[36.0, 60.0]]), 96, 96), atol=1e-7)


def test_target_pickles_for_worker_processes():
    target = density_target([np.array([[3.0, 4.0]]), np.zeros((0, 2))], stride=8, sigma=2.5)
    copy = pickle.loads(pickle.dumps(target))
    assert isinstance(copy, DensityTarget) and (copy.stride, copy.sigma) == (8, 2.5)
    region = Region(0, 0, 16, 16)
    np.testing.assert_array_equal(copy(0, region), target(0, region))
    assert copy(1, region).sum() == 0
