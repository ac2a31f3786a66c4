"""The batch dequantization kernel under Numba's CUDA simulator (or a real GPU), against the
NumPy reference. Runs in the child process of ``tests/test_cuda_simulator_suite.py``."""

from __future__ import annotations

import numpy as np
import pytest

from cdomain import kernels
from cdomain.jpeg.tables import quality_table
from cdomain.kernels import reference

pytestmark = pytest.mark.cudasim


def _tables(qualities):
    return np.stack([
        np.stack([quality_table(q), quality_table(q, chroma=True), quality_table(q, chroma=True)]) for q in qualities
    ]).astype(np.uint16)


@pytest.mark.parametrize("requant", [False, True])
def test_dequantize_batch_on_the_device(cuda, requant):
    rng = np.random.default_rng(5)
    n, batch = 3, 2
    luma = rng.integers(-300, 300, (batch, n, 2, 2)).astype(np.int16)
    chroma = rng.integers(-300, 300, (batch, 2, n, 1, 1)).astype(np.int16)
    tables = _tables([40, 80])
    targets = _tables([15, 95]) if requant else None
    mean = rng.normal(0, 3, 3 * n).astype(np.float32)
    std = rng.uniform(1, 4, 3 * n).astype(np.float32)
    out = cuda.to_device(np.zeros((batch, 3 * n, 2, 2), np.float32))
    got_luma, got_chroma = kernels.dequantize_batch(
        cuda.to_device(luma), cuda.to_device(chroma), tables, targets=targets, upsample=(2, 2), mean=mean, std=std,
        out_luma=out[:, :n], out_chroma=out[:, n:],
    )
    expected = reference.dequantize_batch(luma, chroma, tables, targets, (2, 2), mean, std)
    merged = out.copy_to_host()
    assert np.array_equal(merged[:, :n], expected[0]) and np.array_equal(merged[:, n:], expected[1])
    # outputs allocated by the call, and tables already on the device
    fresh = kernels.dequantize_batch(cuda.to_device(luma), cuda.to_device(chroma), cuda.to_device(tables),
                                     targets=targets, upsample=(2, 2), mean=mean, std=std)
    assert np.array_equal(fresh[0].copy_to_host(), expected[0])
    assert np.array_equal(fresh[1].copy_to_host(), expected[1])
