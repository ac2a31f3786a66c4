"""Invariants of the kernels: round trips and DCT-domain ops equal to their pixel-domain twins."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cdomain import kernels
from cdomain.jpeg.tables import quality_table


def decode_float(coefficients: np.ndarray) -> np.ndarray:
    """Blocks ``[bh, bw, 8, 8]`` (already dequantized) to a float plane, no rounding."""
    samples = kernels.idct_8x8(coefficients.astype(np.float32))
    bh, bw = coefficients.shape[:2]
    return samples.transpose(0, 2, 1, 3).reshape(bh * 8, bw * 8)


block_grids = st.tuples(st.integers(1, 4), st.integers(1, 5))


@settings(max_examples=25, deadline=None)
@given(grid=block_grids, seed=st.integers(0, 2**32 - 1))
def test_hflip_equals_pixel_domain_flip(grid, seed):
    rng = np.random.default_rng(seed)
    coefficients = rng.integers(-300, 300, size=(*grid, 8, 8)).astype(np.int16)
    flipped_pixels = decode_float(coefficients)[:, ::-1]
    np.testing.assert_allclose(decode_float(kernels.hflip(coefficients)), flipped_pixels, atol=1e-3)


@settings(max_examples=25, deadline=None)
@given(grid=block_grids, seed=st.integers(0, 2**32 - 1))
def test_hflip_twice_is_identity(grid, seed):
    rng = np.random.default_rng(seed)
    coefficients = rng.integers(-32767, 32768, size=(2, *grid, 8, 8)).astype(np.int16)
    np.testing.assert_array_equal(kernels.hflip(kernels.hflip(coefficients)), coefficients)


def test_crop_equals_pixel_domain_crop():
    rng = np.random.default_rng(5)
    coefficients = rng.integers(-300, 300, size=(5, 7, 8, 8)).astype(np.int16)
    cropped = kernels.crop(coefficients, 1, 2, 3, 4)
    assert cropped.flags.c_contiguous and cropped.shape == (3, 4, 8, 8)
    np.testing.assert_allclose(decode_float(cropped), decode_float(coefficients)[8:32, 16:48], atol=1e-3)


@settings(max_examples=25, deadline=None)
@given(blocks=arrays(np.float32, (3, 8, 8), elements=st.floats(-2048, 2048, width=32)))
def test_fdct_then_idct_is_identity(blocks):
    np.testing.assert_allclose(kernels.idct_8x8(kernels.fdct_8x8(blocks)), blocks, atol=2e-3)
    np.testing.assert_allclose(kernels.fdct_8x8(kernels.idct_8x8(blocks)), blocks, atol=2e-3)


def test_dct_preserves_energy():
    rng = np.random.default_rng(6)
    blocks = rng.normal(0, 50, size=(10, 8, 8)).astype(np.float32)
    energy = np.sum(blocks.astype(np.float64) ** 2, axis=(-2, -1))
    transformed = kernels.fdct_8x8(blocks).astype(np.float64)
    np.testing.assert_allclose(np.sum(transformed**2, axis=(-2, -1)), energy, rtol=1e-5)


def test_rgb_ycbcr_round_trip_within_two_levels():
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, size=(128, 128, 3), dtype=np.uint8)
    ycc = kernels.rgb_to_ycbcr(rgb)
    back = kernels.ycbcr_to_rgb(ycc[0], ycc[1], ycc[2])
    assert np.abs(back.astype(int) - rgb).max() <= 2


@pytest.mark.parametrize("quality", [100, 95, 75])
def test_samples_blocks_round_trip(quality):
    rng = np.random.default_rng(quality)
    smooth = np.cumsum(np.cumsum(rng.normal(0, 2, size=(32, 40)), 0), 1)
    plane = np.clip(smooth - smooth.min() + 20, 0, 255).astype(np.uint8)
    table = quality_table(quality)
    blocks = kernels.blocks_from_samples(plane, table)
    again = kernels.blocks_from_samples(kernels.samples_from_blocks(blocks, table), table)
    # re-encoding a decoded plane at the same table is nearly idempotent; the closer the
    # quantization step is to the pixel rounding step (q100: all ones), the more it moves
    assert np.mean(again != blocks) < {100: 0.1, 95: 0.03, 75: 0.01}[quality]
    error = np.abs(kernels.samples_from_blocks(blocks, table).astype(int) - plane).mean()
    assert error < {100: 0.5, 95: 1.5, 75: 4.0}[quality]


def test_dequantize_select_channels_are_dequantized_coefficients():
    rng = np.random.default_rng(8)
    coefficients = rng.integers(-50, 50, size=(3, 4, 8, 8)).astype(np.int16)
    table = quality_table(40)
    out = kernels.dequantize_select(coefficients, table, 64)
    # all 64 channels: an invertible relayout of the dequantized coefficients
    from cdomain.jpeg.tables import ZIGZAG_RANK

    relaid = out[ZIGZAG_RANK].reshape(8, 8, 3, 4).transpose(2, 3, 0, 1)
    np.testing.assert_array_equal(relaid, coefficients.astype(np.float32) * table)
