"""``downscale_blocks``: downscale JPEG coefficients by 2 or 4 without leaving the DCT domain.

The public function checks its arguments (``ValueError`` naming the bad one) and runs the
Numba CPU kernel (``rescale_cpu.py``) for NumPy arrays and CPU tensors, or the Numba CUDA kernel
(``rescale_cuda.py``) for CUDA tensors and Numba device arrays; the result has the input's type.
``rescale_reference.py`` holds the NumPy definition and the derivation of the matrices.
"""

from __future__ import annotations

import functools

import numpy as np

from . import checks, rescale_cpu
from .dispatch import Array, host, is_torch, kind
from .rescale_reference import FACTORS, METHODS, downscale_matrices, used_frequencies

__all__ = ["downscale_blocks"]


@functools.lru_cache(maxsize=None)
def _matrices(factor: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """The matrices ``[f, 8, 8]`` and the input frequencies they read, read-only."""
    matrices = np.ascontiguousarray(downscale_matrices(factor, method))
    used = np.ascontiguousarray(used_frequencies(factor, method))
    matrices.flags.writeable = False
    used.flags.writeable = False
    return matrices, used


def downscale_blocks(coefficients: Array, quant_table: Array, factor: int, method: str = "area") -> Array:
    """Downscale quantized blocks ``[..., bh, bw, 8, 8]`` by ``factor`` in the DCT domain.

    Each ``factor x factor`` group of blocks becomes one block: dequantize, combine through one
    precomputed 8x8 matrix per block position (``method="area"``: the exact DCT-domain form of
    an area / box-filter downscale; ``"lowpass"``: Dugad & Ahuja's low-frequency subband
    approximation), requantize with the same table (libjpeg's rounding, clamped to int16).
    Returns int16 ``[..., ceil(bh/f), ceil(bw/f), 8, 8]``; odd block counts are padded by
    replicating the last block row / column. ``factor`` is 1 (a copy), 2 or 4; ``quant_table``
    is ``[8, 8]`` or one per image ``[..., 8, 8]``. Apply it per component: a 4:2:0 image's
    luma and chroma grids each shrink by ``factor`` and stay aligned.
    """
    lead = checks.blocks("coefficients", coefficients)[:-4]
    table = checks.quant_table("quant_table", quant_table, lead)
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or int(factor) not in FACTORS:
        raise ValueError(f"factor must be one of {FACTORS}, got {factor!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    factor = int(factor)
    matrices, used = _matrices(factor, method)
    backend = kind(coefficients)
    if backend == "cuda":
        from . import rescale_cuda

        return rescale_cuda.downscale_blocks(coefficients, table, factor, matrices, used)
    values = host(coefficients)
    shape = values.shape
    coef = np.ascontiguousarray(values).reshape(-1, *shape[-4:])
    tables = np.ascontiguousarray(np.asarray(table, dtype=np.float64).reshape(-1, 8, 8))
    result = rescale_cpu.downscale_blocks(coef, tables, matrices, used)
    result = result.reshape(*shape[:-4], *result.shape[1:])
    if is_torch(coefficients):
        import torch

        return torch.from_numpy(result)
    return result
