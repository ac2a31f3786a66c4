"""DCT-domain downscaling (``kernels.downscale_blocks``) against the pixel route.

The oracle is independent of the kernel under test: decode the coefficients to samples, average
every ``f x f`` samples (area downscale) in NumPy, forward-DCT the 8x8 blocks with
``scipy.fft.dctn`` (checked against ``kernels.fdct_8x8`` too). The DCT is orthonormal, so the
mean squared error of the dequantized coefficients is that of the decoded samples, and the
PSNRs below are pixel PSNRs. Thresholds come from measurement on ``photo_like`` images
(256x384, seeds 0 and 1, qualities 50 and 95), about 1 dB below the lowest value measured:

* transform alone (coefficients dequantized into an all-ones table, so requantizing only rounds
  to integers): ``"area"`` 57.9-58.8 dB (threshold 57), ``"lowpass"`` 41.6-48.8 dB
  (threshold 40.5): the low-pass filter is not the box filter the oracle applies;
* with requantization by the image's own table, ``"area"`` is within 0.03 dB of the pixel
  route quantized with the same table (36.4-44.8 dB);
* colour images (4:4:4 and 4:2:0) against Pillow's decode + ``Image.reduce``: 32.7-38.3 dB;
  these include requantization and colour conversion in the other order (threshold 31.5 for
  2x, 35 for 4x).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.fft
import torch
from PIL import Image

from cdomain import kernels, read_coefficients
from cdomain.data.dct_transforms import downscale_image
from cdomain.jpeg.tables import quality_table
from cdomain.kernels import rescale_reference
from tests.helpers import encode, photo_like, psnr

ONES = np.ones((8, 8), np.uint16)


def blocks_of(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape
    return np.ascontiguousarray(plane.reshape(h // 8, 8, w // 8, 8).swapaxes(1, 2))


def area(plane: np.ndarray, f: int) -> np.ndarray:
    h, w = plane.shape
    return plane.reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def coefficient_psnr(got: np.ndarray, want: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((got - want) ** 2)))


def luma(seed: int, quality: int, height: int = 256, width: int = 384):
    image = read_coefficients(encode(photo_like(height, width, seed), quality, subsampling=0))
    return image.y, image.quant_tables[0]


def oracle(y: np.ndarray, table: np.ndarray, f: int) -> np.ndarray:
    """Decode -> area downscale -> forward DCT (scipy), float64 coefficient blocks."""
    plane = kernels.samples_from_blocks(y, table).astype(np.float64)
    small = area(plane, f) - 128.0
    expected = scipy.fft.dctn(blocks_of(small), axes=(-2, -1), norm="ortho")
    # the kernels' forward DCT agrees with scipy's
    np.testing.assert_allclose(kernels.fdct_8x8(blocks_of(small).astype(np.float32)), expected, atol=1e-3)
    return expected


@pytest.mark.parametrize("seed,quality", [(0, 50), (1, 95)])
@pytest.mark.parametrize("factor", [2, 4])
def test_transform_matches_decode_area_downscale_fdct(seed, quality, factor):
    y, table = luma(seed, quality)
    expected = oracle(y, table, factor)
    dequantized = (y.astype(np.int32) * table).astype(np.int16)  # into an all-ones table
    got = kernels.downscale_blocks(dequantized, ONES, factor, "area").astype(np.float64)
    assert got.shape == expected.shape
    assert coefficient_psnr(got, expected) >= 57.0
    lowpass = kernels.downscale_blocks(dequantized, ONES, factor, "lowpass").astype(np.float64)
    assert 40.5 <= coefficient_psnr(lowpass, expected) < coefficient_psnr(got, expected)


@pytest.mark.parametrize("seed,quality", [(0, 50), (1, 95)])
@pytest.mark.parametrize("factor", [2, 4])
def test_requantized_output_loses_what_the_pixel_route_loses(seed, quality, factor):
    y, table = luma(seed, quality)
    expected = oracle(y, table, factor)
    pixel_route = np.sign(expected) * np.floor(np.abs(expected) / table + 0.5) * table  # same table
    got = kernels.downscale_blocks(y, table, factor).astype(np.float64) * table
    assert coefficient_psnr(got, expected) >= coefficient_psnr(pixel_route, expected) - 0.1
    assert coefficient_psnr(got, expected) >= 36.0


@pytest.mark.parametrize("factor", [2, 4])
def test_odd_block_counts_replicate_edge_blocks(factor):
    # 40x56 px is 5x7 blocks: the last group of each axis is padded with copies of the last block
    y, table = luma(2, 85, 40, 56)
    dequantized = (y.astype(np.int32) * table).astype(np.int16)
    got = kernels.downscale_blocks(dequantized, ONES, factor)
    assert got.shape == (-(-5 // factor), -(-7 // factor), 8, 8)
    # the samples of the downscaled image itself do not depend on the padding
    pixels = kernels.samples_from_blocks(got, ONES).astype(np.float64)[: 40 // factor, : 56 // factor]
    expected = area(kernels.samples_from_blocks(y, table).astype(np.float64), factor)
    assert psnr(np.clip(pixels, 0, 255), np.clip(np.round(expected), 0, 255)) >= 45
    # and the padded part is the downscale of the replicated blocks
    padded = np.pad(y, ((0, got.shape[0] * factor - 5), (0, got.shape[1] * factor - 7), (0, 0), (0, 0)), mode="edge")
    np.testing.assert_array_equal(kernels.downscale_blocks(padded, table, factor), kernels.downscale_blocks(y, table, factor))


@pytest.mark.parametrize("subsampling", [0, 2])  # 4:4:4, 4:2:0
@pytest.mark.parametrize("size", [(256, 384), (200, 296)])
@pytest.mark.parametrize("factor", [2, 4])
def test_colour_image_against_pillow_reduce(subsampling, size, factor):
    data = encode(photo_like(*size, seed=3), 90, subsampling=subsampling)
    image = read_coefficients(data)
    small = downscale_image(image, factor)
    assert (small.height, small.width) == (-(-size[0] // factor), -(-size[1] // factor))
    assert small.sampling == image.sampling
    # block counts are libjpeg's for the new size
    (vmax, hmax) = max(s[0] for s in image.sampling), max(s[1] for s in image.sampling)
    for coefficients, (v, h) in zip(small.coefficients, small.sampling):
        rows = -(-(-(-small.height * v // vmax)) // 8)
        cols = -(-(-(-small.width * h // hmax)) // 8)
        assert coefficients.shape[:2] == (rows, cols)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").reduce(factor))
    assert psnr(small.to_rgb(), expected) >= (31.5 if factor == 2 else 35.0)


@pytest.mark.parametrize("factor", [1, 2, 4])
@pytest.mark.parametrize("method", ["area", "lowpass"])
def test_cpu_kernel_matches_reference(factor, method):
    rng = np.random.default_rng(factor)
    coefficients = np.clip(rng.laplace(0, 25, size=(2, 3, 5, 7, 8, 8)), -1024, 1023).astype(np.int16)
    tables = np.stack([np.stack([quality_table(q) for q in (30 + 10 * i, 70 + 10 * i, 90)]) for i in range(2)])
    got = kernels.downscale_blocks(coefficients, tables, factor, method)
    expected = rescale_reference.downscale_blocks(coefficients, tables, factor, method)
    assert got.dtype == np.int16 and got.shape == expected.shape
    # the kernel sums in another order: only a value within rounding noise of a half may differ
    values = rescale_reference.downscale_values(coefficients, tables, factor, method)
    fraction = np.abs(values) / tables[..., None, None, :, :] % 1.0
    near_half = np.abs(fraction - 0.5) < 1e-9
    assert np.all((got == expected) | near_half)
    assert np.abs(got.astype(np.int32) - expected).max() <= 1


def test_factor_one_is_a_copy_and_torch_in_torch_out():
    rng = np.random.default_rng(5)
    coefficients = np.clip(rng.laplace(0, 25, size=(3, 4, 8, 8)), -1024, 1023).astype(np.int16)
    table = quality_table(75)
    np.testing.assert_array_equal(kernels.downscale_blocks(coefficients, table, 1), coefficients)
    result = kernels.downscale_blocks(torch.from_numpy(coefficients), torch.from_numpy(table.astype(np.int32)), 2)
    assert isinstance(result, torch.Tensor)
    np.testing.assert_array_equal(result.numpy(), kernels.downscale_blocks(coefficients, table, 2))


def test_lowpass_reads_only_the_low_frequencies():
    rng = np.random.default_rng(6)
    coefficients = np.clip(rng.laplace(0, 25, size=(4, 4, 8, 8)), -1024, 1023).astype(np.int16)
    for factor in (2, 4):
        kept = 8 // factor
        high = coefficients.copy()
        high[..., kept:, :] = 0
        high[..., :, kept:] = 0
        table = quality_table(60)
        np.testing.assert_array_equal(
            kernels.downscale_blocks(coefficients, table, factor, "lowpass"),
            kernels.downscale_blocks(high, table, factor, "lowpass"),
        )


def test_constant_image_keeps_its_value():
    # every sample 128 + 40: DC 8 * 40 = 320 in every block, whatever the factor
    coefficients = np.zeros((6, 6, 8, 8), np.int16)
    coefficients[..., 0, 0] = 20
    table = np.full((8, 8), 16, np.uint16)
    for factor in (2, 4):
        for method in ("area", "lowpass"):
            out = kernels.downscale_blocks(coefficients, table, factor, method)
            assert np.all(out[..., 0, 0] == 20) and not out.reshape(-1, 64)[:, 1:].any()


def test_bad_arguments_name_themselves():
    coefficients = np.zeros((2, 2, 8, 8), np.int16)
    table = quality_table(50)
    with pytest.raises(ValueError, match="factor"):
        kernels.downscale_blocks(coefficients, table, 3)
    with pytest.raises(ValueError, match="factor"):
        kernels.downscale_blocks(coefficients, table, True)
    with pytest.raises(ValueError, match="method"):
        kernels.downscale_blocks(coefficients, table, 2, "bicubic")
    with pytest.raises(ValueError, match="coefficients"):
        kernels.downscale_blocks(coefficients.astype(np.int32), table, 2)
    with pytest.raises(ValueError, match="quant_table"):
        kernels.downscale_blocks(coefficients, np.zeros((8, 8), np.uint16), 2)
