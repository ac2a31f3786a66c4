"""The NumPy reference kernels against independent golden values.

The oracles here are written from the standards and libjpeg's formulas directly (the T.81
A.3.3 double sum, hand-worked filter outputs), not from the reference code, so a mistake in
the reference shows up as a disagreement.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cdomain.jpeg.tables import ZIGZAG, quality_table
from cdomain.kernels import reference


def t81_fdct(block: np.ndarray) -> np.ndarray:
    """ITU-T T.81 A.3.3 FDCT, the O(N^4) double sum: S(v,u) with v vertical, u horizontal."""
    out = np.zeros((8, 8))
    for v in range(8):
        for u in range(8):
            cu = 1 / math.sqrt(2) if u == 0 else 1.0
            cv = 1 / math.sqrt(2) if v == 0 else 1.0
            total = 0.0
            for y in range(8):
                for x in range(8):
                    total += (
                        block[y, x]
                        * math.cos((2 * x + 1) * u * math.pi / 16)
                        * math.cos((2 * y + 1) * v * math.pi / 16)
                    )
            out[v, u] = cu * cv * total / 4
    return out


def t81_idct(coefficients: np.ndarray) -> np.ndarray:
    """ITU-T T.81 A.3.3 IDCT, the O(N^4) double sum."""
    out = np.zeros((8, 8))
    for y in range(8):
        for x in range(8):
            total = 0.0
            for v in range(8):
                for u in range(8):
                    cu = 1 / math.sqrt(2) if u == 0 else 1.0
                    cv = 1 / math.sqrt(2) if v == 0 else 1.0
                    total += (
                        cu * cv * coefficients[v, u]
                        * math.cos((2 * x + 1) * u * math.pi / 16)
                        * math.cos((2 * y + 1) * v * math.pi / 16)
                    )
            out[y, x] = total / 4
    return out


def test_fdct_matches_t81_formula():
    rng = np.random.default_rng(0)
    block = rng.uniform(-128, 127, size=(8, 8))
    expected = t81_fdct(block)
    np.testing.assert_allclose(reference.fdct_8x8(block.astype(np.float32)), expected, atol=2e-3)


def test_idct_matches_t81_formula():
    rng = np.random.default_rng(1)
    coefficients = rng.normal(0, 40, size=(8, 8))
    expected = t81_idct(coefficients)
    np.testing.assert_allclose(reference.idct_8x8(coefficients.astype(np.float32)), expected, atol=1e-3)


def test_constant_block_has_only_dc_of_eight_times_value():
    block = np.full((8, 8), 37.0, np.float32)
    coefficients = reference.fdct_8x8(block)
    assert coefficients[0, 0] == pytest.approx(8 * 37.0, abs=1e-4)
    coefficients[0, 0] = 0
    np.testing.assert_allclose(coefficients, 0, atol=1e-4)


def test_dct_matrix_is_orthonormal_and_scaled_matrix_has_exact_first_row():
    d = reference.dct_matrix()
    np.testing.assert_allclose(d @ d.T, np.eye(8), atol=1e-12)
    e = reference.dct_matrix_scaled()
    assert np.all(e[0] == 1.0)
    np.testing.assert_allclose(e, d * math.sqrt(8), atol=1e-12)


def test_single_basis_function_decodes_to_its_cosine():
    # F[0, 1] = 1 (horizontal frequency 1): f[y, x] = 1/4 * C(0) * cos((2x+1) pi / 16)
    coefficients = np.zeros((8, 8), np.float32)
    coefficients[0, 1] = 1.0
    x = np.arange(8)
    expected = np.tile(np.cos((2 * x + 1) * np.pi / 16) / (4 * math.sqrt(2)), (8, 1))
    np.testing.assert_allclose(reference.idct_8x8(coefficients), expected, atol=1e-6)


def test_dequantize_select_golden_layout():
    # One image of 1x2 blocks: block value = 100 * block index + natural index.
    coefficients = (np.arange(64) + np.array([0, 100])[:, None]).reshape(1, 2, 8, 8).astype(np.int16)
    table = np.full((8, 8), 2, np.uint16)
    table[0, 1] = 3
    out = reference.dequantize_select(coefficients, table, 3)
    assert out.shape == (3, 1, 2) and out.dtype == np.float32
    # zigzag 0, 1, 2 are natural (0,0), (0,1) [horizontal frequency 1], (1,0)
    np.testing.assert_array_equal(out[:, 0, 0], [0 * 2, 1 * 3, 8 * 2])
    np.testing.assert_array_equal(out[:, 0, 1], [100 * 2, 101 * 3, 108 * 2])


def test_dequantize_select_upsample_and_normalisation():
    coefficients = np.zeros((2, 2, 8, 8), np.int16)
    coefficients[..., 0, 0] = [[1, 2], [3, 4]]
    out = reference.dequantize_select(coefficients, np.ones((8, 8), np.int32), 1, (2, 3))
    assert out.shape == (1, 4, 6)
    np.testing.assert_array_equal(out[0], np.repeat(np.repeat([[1, 2], [3, 4]], 2, 0), 3, 1))
    mean, std = np.array([1.0], np.float32), np.array([2.0], np.float32)
    normed = reference.dequantize_select(coefficients, np.ones((8, 8), np.int32), 1, (1, 1), mean, std)
    np.testing.assert_array_equal(normed[0], [[0.0, 0.5], [1.0, 1.5]])


def test_requantize_golden_rounding():
    # value = c * 10; to a table of 20: (|v| + 10) // 20, half away from zero.
    coefficients = np.zeros((1, 1, 8, 8), np.int16)
    coefficients[0, 0, 0, :6] = [3, -3, 1, -1, 0, 5]
    out = reference.requantize(coefficients, np.full((8, 8), 10), np.full((8, 8), 20))
    np.testing.assert_array_equal(out[0, 0, 0, :6], [2, -2, 1, -1, 0, 3])
    # with divisor 21 a value of 10 (< half) goes to zero, 31 (> half) to one
    out = reference.requantize(coefficients, np.full((8, 8), 10), np.full((8, 8), 21))
    np.testing.assert_array_equal(out[0, 0, 0, :6], [1, -1, 0, 0, 0, 2])


def test_requantize_clamps_to_int16():
    coefficients = np.full((1, 1, 8, 8), 30000, np.int16)
    coefficients[..., 1] = -30000
    out = reference.requantize(coefficients, np.full((8, 8), 255), np.ones((8, 8)))
    assert out.dtype == np.int16
    assert out[0, 0, 0, 0] == 32767 and out[0, 0, 0, 1] == -32768


def test_hflip_golden():
    coefficients = np.zeros((1, 2, 8, 8), np.int16)
    coefficients[0, 0, 2, 3] = 5  # odd horizontal frequency: negated
    coefficients[0, 0, 3, 2] = 7  # even: kept
    out = reference.hflip(coefficients)
    assert out[0, 1, 2, 3] == -5 and out[0, 1, 3, 2] == 7
    assert not out[0, 0].any()


def test_upsample_h2v1_hand_worked():
    # libjpeg h2v1: out[2j] = (3 x[j] + x[j-1] + 1) >> 2, out[2j+1] = (3 x[j] + x[j+1] + 2) >> 2
    plane = np.array([[10, 20, 40]], np.uint8)
    out = reference.upsample_plane(plane, (1, 2), (1, 6))
    np.testing.assert_array_equal(out, [[10, 13, 17, 25, 35, 40]])
    # odd width: the last real column is column 2 of the plane, the padding is ignored
    padded = np.array([[10, 20, 40, 255]], np.uint8)
    np.testing.assert_array_equal(reference.upsample_plane(padded, (1, 2), (1, 5)), [[10, 13, 17, 25, 35]])


def test_upsample_h2v2_hand_worked():
    # colsum = 3 * nearer row + further row (edge rows replicate); then
    # out[2j] = (3 c[j] + c[j-1] + 8) >> 4 and out[2j+1] = (3 c[j] + c[j+1] + 7) >> 4
    plane = np.array([[0, 16, 32], [64, 80, 96]], np.uint8)
    top = [0, 16, 32]  # row 0: colsum with row above (itself) = 4 * row 0
    c_up = 4 * np.array(top)
    c_down = 3 * np.array(top) + np.array([64, 80, 96])
    expected_row0 = [
        (4 * c_up[0] + 8) >> 4, (3 * c_up[0] + c_up[1] + 7) >> 4,
        (3 * c_up[1] + c_up[0] + 8) >> 4, (3 * c_up[1] + c_up[2] + 7) >> 4,
        (3 * c_up[2] + c_up[1] + 8) >> 4, (4 * c_up[2] + 7) >> 4,
    ]
    expected_row1 = [
        (4 * c_down[0] + 8) >> 4, (3 * c_down[0] + c_down[1] + 7) >> 4,
        (3 * c_down[1] + c_down[0] + 8) >> 4, (3 * c_down[1] + c_down[2] + 7) >> 4,
        (3 * c_down[2] + c_down[1] + 8) >> 4, (4 * c_down[2] + 7) >> 4,
    ]
    out = reference.upsample_plane(plane, (2, 2), (4, 6))
    np.testing.assert_array_equal(out[0], expected_row0)
    np.testing.assert_array_equal(out[1], expected_row1)
    assert expected_row0 == [0, 4, 12, 20, 28, 32]  # the formulas worked by hand
    assert expected_row1 == [16, 20, 28, 36, 44, 48]


def test_upsample_h1v2_hand_worked():
    plane = np.array([[0], [100], [200]], np.uint8)
    out = reference.upsample_plane(plane, (2, 1), (6, 1))
    # rows: (3*0+0+1)>>2, (3*0+100+2)>>2, (300+0+1)>>2, (300+200+2)>>2, (600+100+1)>>2, (800+2)>>2
    np.testing.assert_array_equal(out[:, 0], [0, 25, 75, 125, 175, 200])


def test_upsample_narrow_component_falls_back_to_repetition():
    # libjpeg uses fancy h2v1/h2v2 only when the component is more than 2 samples wide
    plane = np.array([[10, 50]], np.uint8)
    np.testing.assert_array_equal(reference.upsample_plane(plane, (1, 2), (1, 4)), [[10, 10, 50, 50]])


def test_ycbcr_to_rgb_golden():
    y = np.array([[128, 0, 255, 76]], np.uint8)
    cb = np.array([[128, 128, 128, 85]], np.uint8)
    cr = np.array([[128, 255, 0, 255]], np.uint8)
    rgb = reference.ycbcr_to_rgb(y, cb, cr)
    assert rgb[0, 0].tolist() == [128, 128, 128]
    # Y=0, Cr=255: R = round(1.402 * 127) = 178, G = 0 - 0.71414 * 127 < 0 -> 0, B = 0
    assert rgb[0, 1].tolist() == [178, 0, 0]
    # Y=255, Cr=0: R = 255 - 179.5 -> 255 + ((FIX(1.402) * -128 + 2**15) >> 16) = 76
    assert rgb[0, 2, 0] == 255 + ((reference.fix(1.402) * -128 + 2**15) >> 16) == 76


def test_colour_conversion_close_to_float_formulas():
    rng = np.random.default_rng(3)
    y, cb, cr = rng.integers(0, 256, size=(3, 64, 64), dtype=np.uint8)
    yf, cbf, crf = (a.astype(np.float64) for a in (y, cb, cr))
    expected = np.stack(
        [yf + 1.402 * (crf - 128), yf - 0.344136 * (cbf - 128) - 0.714136 * (crf - 128), yf + 1.772 * (cbf - 128)],
        axis=-1,
    )
    expected = np.clip(np.round(expected), 0, 255)
    assert np.abs(reference.ycbcr_to_rgb(y, cb, cr) - expected).max() <= 1
    rgb = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    expected = np.stack(
        [0.299 * r + 0.587 * g + 0.114 * b,
         -0.168736 * r - 0.331264 * g + 0.5 * b + 128,
         0.5 * r - 0.418688 * g - 0.081312 * b + 128]
    )
    assert np.abs(reference.rgb_to_ycbcr(rgb).astype(np.float64) - np.round(expected)).max() <= 1


def test_samples_blocks_round_trip_at_quality_100():
    rng = np.random.default_rng(4)
    plane = rng.integers(0, 256, size=(16, 24), dtype=np.uint8)
    table = quality_table(100)
    blocks = reference.blocks_from_samples(plane, table)
    assert blocks.shape == (2, 3, 8, 8) and blocks.dtype == np.int16
    back = reference.samples_from_blocks(blocks, table)
    assert np.abs(back.astype(int) - plane).max() <= 2


def test_zigzag_is_the_t81_order():
    # T.81 Figure A.6 begins (0,0) (0,1) (1,0) (2,0) (1,1) (0,2) ...
    assert ZIGZAG[:6].tolist() == [0, 1, 8, 16, 9, 2]
