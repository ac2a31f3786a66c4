"""Numba CPU kernel of ``rescale_reference.downscale_blocks``.

One output block at a time, separably: first each row ``i`` of its input group is combined
horizontally, ``T_i = sum_j (C_ij * q) M_j^T``, visiting only the nonzero coefficients (most
quantized coefficients are zero) at the frequencies the matrices read, then
``out = sum_i M_i T_i`` skipping the matrices' zero entries, then the quantizer. Edge groups read
the last block row / column again (replication) instead of copying a padded array. Compiled with
``cache=True`` and ``nogil=True`` like ``cpu.py``; the matrices arrive as arguments, so nothing
here is compiled in from another file.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _downscale(coef, table, matrices, used, out):
    """``coef`` int16 ``[B, bh, bw, 8, 8]``, ``table`` float64 ``[T, 8, 8]`` (T = 1 or B),
    ``matrices`` float64 ``[f, 8, 8]``, ``used`` int64 input frequencies read, ``out`` int16
    ``[B, ceil(bh/f), ceil(bw/f), 8, 8]``."""
    nb, bh, bw = coef.shape[0], coef.shape[1], coef.shape[2]
    oh, ow = out.shape[1], out.shape[2]
    f = matrices.shape[0]
    nu = used.shape[0]
    transposed = np.empty((f, 8, 8), np.float64)  # [j, l, v] = M_j[v, l]: contiguous over v
    for j in range(f):
        for v in range(8):
            for l in range(8):
                transposed[j, l, v] = matrices[j, v, l]
    tmp = np.empty((8, 8), np.float64)
    acc = np.empty((8, 8), np.float64)
    for b in range(nb):
        q = table[b if table.shape[0] > 1 else 0]
        for bi in range(oh):
            for bj in range(ow):
                for u in range(8):
                    for v in range(8):
                        acc[u, v] = 0.0
                for i in range(f):
                    row = min(bi * f + i, bh - 1)
                    for a in range(nu):
                        for v in range(8):
                            tmp[used[a], v] = 0.0
                    for j in range(f):
                        col = min(bj * f + j, bw - 1)
                        for a in range(nu):
                            k = used[a]
                            for c in range(nu):
                                l = used[c]
                                value = coef[b, row, col, k, l]
                                if value != 0:
                                    scaled = np.float64(value) * q[k, l]
                                    for v in range(8):
                                        tmp[k, v] += scaled * transposed[j, l, v]
                    for u in range(8):
                        for a in range(nu):
                            k = used[a]
                            w = matrices[i, u, k]
                            if w != 0.0:
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


def downscale_blocks(coef: np.ndarray, table: np.ndarray, matrices: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Contiguous int16 ``[B, bh, bw, 8, 8]`` with float64 ``[T, 8, 8]`` tables -> int16 blocks."""
    nb, bh, bw = coef.shape[:3]
    f = matrices.shape[0]
    out = np.empty((nb, -(-bh // f), -(-bw // f), 8, 8), np.int16)
    _downscale(coef, table, matrices, used, out)
    return out
