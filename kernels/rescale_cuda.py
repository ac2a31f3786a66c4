"""Numba CUDA kernel of ``rescale_reference.downscale_blocks``, and its launcher.

One thread per output coefficient ``(b, bi, bj, u, v)`` in a grid-stride loop, located and
launched by ``cuda.py``'s helpers (``_block_coefficient``, ``_launch``); each computes
``sum_i sum_k M_i[u, k] sum_j sum_l C_ij[k, l] q[k, l] M_j[v, l]`` in float64, then libjpeg's
quantizer rounding. Imported only when a CUDA array reaches :func:`cdomain.kernels.downscale_blocks`.
The summation order differs from the CPU kernel, so a value within rounding noise of a half
may round the other way (one quantization step on that coefficient).
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from .cuda import _block_coefficient, _launch


@cuda.jit
def _downscale_kernel(coef, table, matrices, used, out):
    nb, oh, ow = out.shape[0], out.shape[1], out.shape[2]
    bh, bw = coef.shape[1], coef.shape[2]
    f = matrices.shape[0]
    multi = table.shape[0] > 1
    total = nb * oh * ow * 64
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for idx in range(start, total, stride):
        b, bi, bj, u, v = _block_coefficient(idx, oh, ow)
        t = b if multi else 0
        acc = 0.0
        for i in range(f):
            row = min(bi * f + i, bh - 1)
            for a in range(used.shape[0]):
                k = used[a]
                inner = 0.0
                for j in range(f):
                    col = min(bj * f + j, bw - 1)
                    for c in range(used.shape[0]):
                        l = used[c]
                        inner += np.float64(coef[b, row, col, k, l]) * np.float64(table[t, k * 8 + l]) * matrices[j, v, l]
                acc += matrices[i, u, k] * inner
        q = np.float64(table[t, u * 8 + v])
        magnitude = math.floor(abs(acc) / q + 0.5)
        if acc >= 0:
            out[b, bi, bj, u, v] = np.int16(min(magnitude, 32767.0))
        else:
            out[b, bi, bj, u, v] = np.int16(-min(magnitude, 32768.0))


def downscale_blocks(coefficients, quant_table, factor: int, matrices: np.ndarray, used: np.ndarray):
    """CUDA tensors / Numba device arrays ``[..., bh, bw, 8, 8]`` -> the same kind, downscaled."""
    from ._device import _Context

    ctx = _Context(coefficients)
    shape = tuple(coefficients.shape)
    lead = shape[:-4]
    batch = math.prod(lead)
    bh, bw = shape[-4], shape[-3]
    oh, ow = -(-bh // factor), -(-bw // factor)
    with ctx.device_scope():
        coef = ctx.view(ctx.contiguous(coefficients, (batch, bh, bw, 8, 8)))
        result, target = ctx.empty((batch, oh, ow, 8, 8), np.int16)
        _launch(_downscale_kernel, batch * oh * ow * 64, ctx.stream, coef, ctx.table(quant_table),
                ctx.upload(matrices), ctx.upload(used), target)
        return result.reshape(*lead, oh, ow, 8, 8)
