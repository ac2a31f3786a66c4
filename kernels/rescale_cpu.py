"""Numba CPU kernel of ``rescale_reference.downscale_blocks``.

One output block at a time, separably: first each row ``i`` of its input group is combined
horizontally, ``T_i = sum_j (C_ij * q) M_j^T``, skipping zero coefficients (most quantized
coefficients are zero, so this is the bulk of the saving), then ``out = sum_i M_i T_i``, then
the quantizer. About ``8 x 8 x nonzeros + 512 f`` multiply-adds per output block instead of the
``2 x 512`` of a pixel-domain inverse + forward DCT per input block. Edge groups read the last
block row / column again (replication) instead of copying a padded array. Compiled with
``cache=True`` and ``nogil=True`` like ``cpu.py``; the matrices arrive as arguments, so nothing
here is compiled in from another file.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _downscale(coef, table, matrices, used, out):
    """``coef`` int16 ``[B, bh, bw, 8, 8]``, ``table`` float64 ``[T, 8, 8]`` (T = 1 or B),
    ``matrices`` float64 ``[f, 8, 8]``, ``used`` frequencies read per axis, ``out`` int16
    ``[B, ceil(bh/f), ceil(bw/f), 8, 8]``."""
    nb, bh, bw = coef.shape[0], coef.shape[1], coef.shape[2]
    oh, ow = out.shape[1], out.shape[2]
    f = matrices.shape[0]
    tmp = np.empty((8, 8), np.float64)
    acc = np.empty((8, 8), np.float64)
    for b in range(nb):
        q = table[b if table.shape[0] > 1 else 0]
        for bi in range(oh):
            for bj in range(ow):
                acc[:, :] = 0.0
                for i in range(f):
                    row = min(bi * f + i, bh - 1)
                    tmp[:, :] = 0.0
                    for j in range(f):
                        col = min(bj * f + j, bw - 1)
                        m = matrices[j]
                        for k in range(used):
                            for l in range(used):
                                c = coef[b, row, col, k, l]
                                if c != 0:
                                    value = np.float64(c) * q[k, l]
                                    for v in range(8):
                                        tmp[k, v] += value * m[v, l]
                    m = matrices[i]
                    for u in range(8):
                        for k in range(used):
                            w = m[u, k]
                            for v in range(8):
                                acc[u, v] += w * tmp[k, v]
                for u in range(8):
                    for v in range(8):
                        value = acc[u, v]
                        magnitude = np.floor(abs(value) / q[u, v] + 0.5)
                        if value >= 0:
                            out[b, bi, bj, u, v] = np.int16(min(magnitude, 32767.0))
                        else:
                            out[b, bi, bj, u, v] = np.int16(-min(magnitude, 32768.0))


def downscale_blocks(coef: np.ndarray, table: np.ndarray, matrices: np.ndarray, used: int) -> np.ndarray:
    """Contiguous int16 ``[B, bh, bw, 8, 8]`` with float64 ``[T, 8, 8]`` tables -> int16 blocks."""
    nb, bh, bw = coef.shape[:3]
    f = matrices.shape[0]
    out = np.empty((nb, -(-bh // f), -(-bw // f), 8, 8), np.int16)
    _downscale(coef, table, matrices, used, out)
    return out
