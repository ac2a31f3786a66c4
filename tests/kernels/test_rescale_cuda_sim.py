"""The CUDA downscale kernel under Numba's CUDA simulator (or a GPU), against the CPU kernel.

Run with ``NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cudasim tests/kernels``; the default test
run starts that in a child process (``tests/test_cuda_simulator_suite.py``). Inputs are tiny:
the simulator runs every thread in Python.
"""

from __future__ import annotations

import numpy as np
import pytest

from cdomain import kernels
from cdomain.jpeg.tables import quality_table
from cdomain.kernels import rescale_reference

pytestmark = pytest.mark.cudasim


@pytest.mark.parametrize("factor,method", [(2, "area"), (4, "lowpass")])
def test_downscale_blocks_on_device(cuda, factor, method):
    rng = np.random.default_rng(factor)
    shape = (2, 3, 2, 8, 8) if factor == 2 else (1, 5, 4, 8, 8)  # odd counts: edge replication
    coefficients = np.clip(rng.laplace(0, 20, size=shape), -1024, 1023).astype(np.int16)
    tables = np.stack([quality_table(40), quality_table(85)])[: shape[0]]
    result = kernels.downscale_blocks(cuda.to_device(coefficients), tables, factor, method)
    assert not isinstance(result, np.ndarray) and hasattr(result, "copy_to_host")
    got = result.copy_to_host()
    expected = kernels.downscale_blocks(coefficients, tables, factor, method)
    values = rescale_reference.downscale_values(coefficients, tables, factor, method)
    near_half = np.abs(np.abs(values) / tables[:, None, None] % 1.0 - 0.5) < 1e-9
    assert got.shape == expected.shape
    assert np.all((got == expected) | near_half)
