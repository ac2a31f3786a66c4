"""CUDA kernels under Numba's CUDA simulator (or a real GPU), against the CPU kernels.

Run in a separate process, since the simulator must be chosen before ``numba.cuda`` loads:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim tests/kernels

The simulator runs every thread in Python (about a millisecond each), so inputs are tiny.
Inputs go in as Numba device arrays through the public dispatch, which is the same path torch
CUDA tensors take after their zero-copy ``as_cuda_array`` view (that last step is covered by
``test_cuda_torch.py`` on machines with a GPU).
"""

from __future__ import annotations

import numpy as np
import pytest

from cdomain import kernels
from cdomain.jpeg.tables import quality_table
from cdomain.kernels import dispatch

pytestmark = pytest.mark.cudasim


@pytest.fixture
def rng():
    return np.random.default_rng(99)


def blocks(rng, shape, scale=40):
    return np.clip(rng.laplace(0, scale, size=(*shape, 8, 8)), -2048, 2047).astype(np.int16)


def host(array):
    return array.copy_to_host()


def test_dispatch_returns_device_arrays(cuda, rng):
    coefficients = cuda.to_device(blocks(rng, (1, 2)))
    result = kernels.hflip(coefficients)
    assert not isinstance(result, np.ndarray) and hasattr(result, "copy_to_host")
    assert dispatch.kind(coefficients) == "cuda"


@pytest.mark.parametrize("upsample", [(1, 1), (2, 2), (1, 2)])
def test_dequantize_select(cuda, rng, upsample):
    coefficients = blocks(rng, (2, 3))
    table = quality_table(60)
    expected = kernels.dequantize_select(coefficients, table, 4, upsample=upsample)
    got = kernels.dequantize_select(cuda.to_device(coefficients), table, 4, upsample=upsample)
    np.testing.assert_array_equal(host(got), expected)


def test_dequantize_select_batch_tables_normalisation_and_out(cuda, rng):
    coefficients = blocks(rng, (2, 1, 2))  # two images of 1x2 blocks
    tables = np.stack([quality_table(30), quality_table(80)])
    mean = np.array([1.0, -2.0, 0.5], np.float32)
    std = np.array([3.0, 0.5, 2.0], np.float32)
    expected = kernels.dequantize_select(coefficients, tables, 3, mean=mean, std=std)
    merged = cuda.to_device(np.zeros((2, 5, 1, 2), np.float32))
    result = kernels.dequantize_select(cuda.to_device(coefficients), tables, 3, mean=mean, std=std, out=merged[:, 1:4])
    assert result is not None
    np.testing.assert_array_equal(host(merged)[:, 1:4], expected)
    assert not host(merged)[:, [0, 4]].any()
    # tables may live on the device too
    got = kernels.dequantize_select(cuda.to_device(coefficients), cuda.to_device(tables), 3, mean=mean, std=std)
    np.testing.assert_array_equal(host(got), expected)


def test_hflip_crop_requantize(cuda, rng):
    coefficients = blocks(rng, (2, 2, 3), scale=300)
    device = cuda.to_device(coefficients)
    np.testing.assert_array_equal(host(kernels.hflip(device)), kernels.hflip(coefficients))
    np.testing.assert_array_equal(host(kernels.crop(device, 1, 1, 1, 2)), kernels.crop(coefficients, 1, 1, 1, 2))
    source = np.stack([quality_table(90), quality_table(70)])
    target = quality_table(20)
    np.testing.assert_array_equal(
        host(kernels.requantize(device, source, target)), kernels.requantize(coefficients, source, target)
    )


def test_block_kernels_share_one_thread_to_coefficient_mapping(cuda):
    from cdomain.kernels import cuda as cuda_kernels
    from cdomain.kernels import rescale_cuda

    mapping = cuda_kernels._block_coefficient

    @cuda.jit
    def probe(height, width, out):  # one thread visits every index
        for idx in range(out.shape[0]):
            b, i, j, u, v = mapping(idx, height, width)
            out[idx, 0], out[idx, 1], out[idx, 2], out[idx, 3], out[idx, 4] = b, i, j, u, v

    shape = (2, 3, 5, 8, 8)  # odd block counts: height and width cannot be swapped unnoticed
    out = cuda.to_device(np.full((int(np.prod(shape)), 5), -1, np.int64))
    probe[1, 1](shape[1], shape[2], out)
    # golden: NumPy's C-order unravelling of every flat index
    expected = np.stack(np.unravel_index(np.arange(np.prod(shape)), shape), axis=1)
    np.testing.assert_array_equal(host(out), expected)
    assert rescale_cuda._block_coefficient is mapping and rescale_cuda._launch is cuda_kernels._launch


def test_dct(cuda, rng):
    values = rng.normal(0, 100, size=(2, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(host(kernels.idct_8x8(cuda.to_device(values))), kernels.idct_8x8(values), atol=1e-4)
    np.testing.assert_allclose(host(kernels.fdct_8x8(cuda.to_device(values))), kernels.fdct_8x8(values), atol=1e-4)


def test_samples_and_blocks(cuda, rng):
    coefficients = blocks(rng, (1, 2), scale=8)
    table = quality_table(50)
    samples = kernels.samples_from_blocks(coefficients, table)
    # the simulator evaluates the same float64 sums in the same order as the CPU kernel
    np.testing.assert_array_equal(host(kernels.samples_from_blocks(cuda.to_device(coefficients), table)), samples)
    plane = rng.integers(0, 256, size=(6, 13), dtype=np.uint8)  # padded to 8x16 on the device
    np.testing.assert_array_equal(
        host(kernels.blocks_from_samples(cuda.to_device(plane), table)), kernels.blocks_from_samples(plane, table)
    )


@pytest.mark.parametrize("factor", [(1, 1), (1, 2), (2, 1), (2, 2)])
def test_upsample_plane(cuda, rng, factor):
    plane = rng.integers(0, 256, size=(4, 5), dtype=np.uint8)
    size = (4 * factor[0] - 1, 5 * factor[1] - 1)
    for method in ("fancy", "nearest"):
        got = kernels.upsample_plane(cuda.to_device(plane), factor, size, method)
        np.testing.assert_array_equal(host(got), kernels.upsample_plane(plane, factor, size, method))


def test_colour(cuda, rng):
    y, cb, cr = rng.integers(0, 256, size=(3, 4, 6), dtype=np.uint8)
    got = kernels.ycbcr_to_rgb(cuda.to_device(y), cuda.to_device(cb), cuda.to_device(cr))
    np.testing.assert_array_equal(host(got), kernels.ycbcr_to_rgb(y, cb, cr))
    rgb = rng.integers(0, 256, size=(2, 4, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(host(kernels.rgb_to_ycbcr(cuda.to_device(rgb))), kernels.rgb_to_ycbcr(rgb))


def test_validation_applies_to_device_arrays(cuda, rng):
    device = cuda.to_device(blocks(rng, (1, 2)))
    with pytest.raises(ValueError, match="n"):
        kernels.dequantize_select(device, quality_table(50), 70)
    with pytest.raises(ValueError, match="same device"):
        kernels.dequantize_select(device, quality_table(50), 2, out=np.zeros((2, 1, 2), np.float32))
    with pytest.raises(ValueError, match="not inside"):
        kernels.crop(device, 0, 1, 1, 2)
