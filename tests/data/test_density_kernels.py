"""Density maps as the literature makes them: geometry-adaptive kernels (beta 0.3, k 3) checked
by hand and against SciPy's k-d tree, fixed kernels against SciPy's normal CDF, every map
summing to the heads inside its crop, evaluation targets counting every annotated head, and the
per-dataset kernel cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.stats import norm

from cdomain.data.crowd_formats import density_cache
from cdomain.data.crowd_formats.density_cache import DensityRecipe, kernel_widths, make_target
from cdomain.data.dct_transforms import Region
from cdomain.data.density import adaptive_sigmas, density_map
from cdomain.errors import DataError


def test_adaptive_sigma_by_hand():
    """Corners of a 2-px square: each head's 3 nearest are at 2, 2 and 2*sqrt(2) px."""
    square = np.array([[10.0, 10.0], [12.0, 10.0], [10.0, 12.0], [12.0, 12.0]])
    expected = 0.3 * (2 + 2 + 2 * math.sqrt(2)) / 3
    assert np.allclose(adaptive_sigmas(square), expected)
    # two heads 10 px apart: one neighbour each, 0.3 x 10; a lone head gets the fallback
    assert np.allclose(adaptive_sigmas(np.array([[0.0, 0.0], [6.0, 8.0]])), 3.0)
    assert adaptive_sigmas(np.array([[5.0, 5.0]]), fallback=15.0).tolist() == [15.0]
    assert adaptive_sigmas(np.zeros((0, 2))).shape == (0,)
    # duplicate annotations do not give zero-width kernels
    assert adaptive_sigmas(np.array([[1.0, 1.0], [1.0, 1.0]])).min() == 0.1


def test_adaptive_sigma_matches_a_kd_tree():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 500, size=(2500, 2))  # more than one block of 1024 rows
    distances, _ = cKDTree(points).query(points, k=4)  # itself first, then the 3 nearest
    assert np.allclose(adaptive_sigmas(points, beta=0.3, k=3, minimum=0.0), 0.3 * distances[:, 1:].mean(axis=1))


def test_fixed_kernel_cells_against_scipy_normal_cdf():
    """One head at (13.3, 6.2), sigma 4, 32 x 24 px on 8-px cells: each cell is the Gaussian's
    mass over its pixels, renormalised to the image."""
    x, y, sigma = 13.3, 6.2, 4.0
    result = density_map(np.array([[x, y]]), 24, 32, stride=8, sigma=sigma)[0]
    edges_x, edges_y = np.arange(0, 33, 8), np.arange(0, 25, 8)
    mass_x = np.diff(norm.cdf(edges_x, loc=x, scale=sigma))
    mass_y = np.diff(norm.cdf(edges_y, loc=y, scale=sigma))
    expected = np.outer(mass_y / mass_y.sum(), mass_x / mass_x.sum())
    assert result.shape == (3, 4) and np.allclose(result, expected, atol=1e-6)


def test_per_head_widths_are_used_per_head():
    points = np.array([[8.0, 8.0], [40.0, 8.0]])
    both = density_map(points, 16, 48, stride=8, sigma=np.array([1.0, 6.0]))
    one = density_map(points[:1], 16, 48, stride=8, sigma=1.0)
    other = density_map(points[1:], 16, 48, stride=8, sigma=6.0)
    assert np.allclose(both, one + other, atol=1e-6)
    with pytest.raises(ValueError, match="sigmas for"):
        density_map(points, 16, 48, sigma=np.array([1.0]))


@pytest.mark.parametrize("method", ["adaptive", "fixed"])
def test_every_crop_sums_to_the_heads_inside_it(method):
    rng = np.random.default_rng(1)
    points = [rng.uniform(0, [96, 64], size=(n, 2)) for n in (0, 1, 5, 40)]
    target = make_target(points, DensityRecipe(method, sigma=6.0), evaluation=False)
    for index, pts in enumerate(points):
        for _ in range(10):
            top, left = int(rng.integers(0, 4)) * 16, int(rng.integers(0, 4)) * 16
            region = Region(top, left, 32, 48, flipped=bool(rng.integers(2)))
            inside = ((pts[:, 0] >= left) & (pts[:, 0] < left + 48) & (pts[:, 1] >= top) & (pts[:, 1] < top + 32))
            density = target(index, region)
            assert density.shape == (1, 4, 6)
            assert density.sum() == pytest.approx(inside.sum(), abs=1e-4)
            assert target.count(index, region) == inside.sum()


def test_evaluation_targets_count_every_annotated_head():
    """Heads in the border trimmed to whole MCUs, or annotated just outside the image, still count."""
    points = [np.array([[5.0, 5.0], [70.0, 20.0], [30.0, 50.5], [-0.5, 10.0]])]  # image 72 x 52 -> 64 x 48
    region = Region(0, 0, 48, 64)
    evaluation = make_target(points, DensityRecipe("fixed", 4.0), evaluation=True)
    training = make_target(points, DensityRecipe("fixed", 4.0), evaluation=False)
    assert evaluation(0, region).sum() == pytest.approx(4.0, abs=1e-5) and evaluation.count(0, region) == 4
    assert training(0, region).sum() == pytest.approx(1.0, abs=1e-5)


def test_kernel_widths_are_cached_atomically(private_data_dir, monkeypatch):
    rng = np.random.default_rng(2)
    points = [rng.uniform(0, 100, size=(n, 2)) for n in (3, 0, 20)]
    recipe = DensityRecipe("adaptive", 15.0)
    first = kernel_widths(points, recipe)
    files = sorted((private_data_dir / "crowd-kernels").glob("*.safetensors"))
    assert files and not list((private_data_dir / "crowd-kernels").glob(".*"))
    monkeypatch.setattr(density_cache, "adaptive_sigmas", lambda *a, **k: pytest.fail("not read from the cache"))
    again = kernel_widths(points, recipe)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert [len(w) for w in again] == [3, 0, 20]
    monkeypatch.undo()
    kernel_widths(points, DensityRecipe("adaptive", 15.0, beta=0.5))  # another recipe, another file
    assert len(list((private_data_dir / "crowd-kernels").glob("*.safetensors"))) == len(files) + 1
    with pytest.raises(DataError, match="density method"):
        DensityRecipe("gaussian")
