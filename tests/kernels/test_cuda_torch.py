"""The torch CUDA branch of the dispatch, on a real GPU: CUDA tensors in, CUDA tensors out,
same values as the CPU kernels. Skipped where torch sees no GPU (the simulator cannot host
torch tensors; ``test_cuda_sim.py`` covers the kernels themselves there)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdomain import kernels
from cdomain.jpeg.tables import quality_table

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU visible to torch")


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_all_ops_on_cuda_tensors_match_cpu(rng):
    device = torch.device("cuda")
    coefficients = np.clip(rng.laplace(0, 30, size=(3, 5, 7, 8, 8)), -2048, 2047).astype(np.int16)
    table = quality_table(60)
    gpu = torch.from_numpy(coefficients).to(device)
    gpu_table = torch.from_numpy(table.astype(np.int32)).to(device)

    def same(result, expected, exact=True):
        assert isinstance(result, torch.Tensor) and result.is_cuda
        if exact:
            np.testing.assert_array_equal(result.cpu().numpy(), expected)
        else:
            assert np.abs(result.cpu().numpy().astype(np.float64) - expected).max() <= 1

    for n, upsample in ((64, (1, 1)), (6, (2, 2))):
        same(kernels.dequantize_select(gpu, table, n, upsample=upsample),
             kernels.dequantize_select(coefficients, table, n, upsample=upsample))
        same(kernels.dequantize_select(gpu, gpu_table, n, upsample=upsample),
             kernels.dequantize_select(coefficients, table, n, upsample=upsample))
    same(kernels.hflip(gpu), kernels.hflip(coefficients))
    same(kernels.crop(gpu, 1, 2, 3, 4), kernels.crop(coefficients, 1, 2, 3, 4))
    same(kernels.requantize(gpu, table, quality_table(20)), kernels.requantize(coefficients, table, quality_table(20)))
    values = torch.randn(4, 8, 8) * 100
    for transform in (kernels.idct_8x8, kernels.fdct_8x8):
        result = transform(values.to(device)).cpu().numpy()
        np.testing.assert_allclose(result, transform(values.numpy()), atol=1e-3)
    # FMA contraction on the GPU may move a sample sitting on a rounding half by one level
    samples = kernels.samples_from_blocks(coefficients, table)
    same(kernels.samples_from_blocks(gpu, table), samples, exact=False)
    same(kernels.blocks_from_samples(torch.from_numpy(samples[0, :37, :51].copy()).to(device), table),
         kernels.blocks_from_samples(samples[0, :37, :51].copy(), table), exact=False)
    plane = rng.integers(0, 256, size=(20, 27), dtype=np.uint8)
    for factor in ((1, 2), (2, 1), (2, 2)):
        same(kernels.upsample_plane(torch.from_numpy(plane).to(device), factor, (39, 53)),
             kernels.upsample_plane(plane, factor, (39, 53)))
    y, cb, cr = (torch.from_numpy(p).to(device) for p in rng.integers(0, 256, size=(3, 2, 9, 11), dtype=np.uint8))
    same(kernels.ycbcr_to_rgb(y, cb, cr), kernels.ycbcr_to_rgb(y.cpu().numpy(), cb.cpu().numpy(), cr.cpu().numpy()))
    rgb = rng.integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    same(kernels.rgb_to_ycbcr(torch.from_numpy(rgb).to(device)), kernels.rgb_to_ycbcr(rgb))


def test_out_slice_and_stream_ordering(rng):
    device = torch.device("cuda")
    coefficients = np.clip(rng.laplace(0, 30, size=(2, 4, 6, 8, 8)), -2048, 2047).astype(np.int16)
    expected = kernels.dequantize_select(coefficients, quality_table(75), 8)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        merged = torch.zeros(2, 24, 4, 6, device=device)
        gpu = torch.from_numpy(coefficients).to(device, non_blocking=True)
        result = kernels.dequantize_select(gpu, quality_table(75), 8, out=merged[:, 8:16])
        merged += 0  # torch work queued after the kernel on the same stream
    stream.synchronize()
    assert result is not None
    np.testing.assert_array_equal(merged[:, 8:16].cpu().numpy(), expected)
    assert not merged[:, :8].any() and not merged[:, 16:].any()
