"""Numba CPU kernels, one per operation of ``reference.py`` and with the same semantics.

The functions here take validated, already normalised NumPy arrays (leading batch dimensions
collapsed to one, tables as int64 ``[T, 64]`` with ``T`` 1 or the batch size); the public
functions in ``cdomain.kernels`` do that preparation. All kernels are compiled with
``cache=True`` (compiled once per machine) and ``nogil=True`` (callable from loader threads).
Only :func:`dequantize_select` and the block<->sample conversions run in parallel, and only on
batches large enough to pay for the thread start-up: a data-loader worker that converts one
image at a time should not fan out into threads of its own.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import reference

#: Below this many 8x8 blocks per call the serial kernels are used.
PARALLEL_MIN_BLOCKS = 4096

_DCT = reference.dct_matrix_scaled()
_CR_R, _CB_B, _CR_G, _CB_G = reference.ycbcr_tables()
_SCALEBITS = reference.SCALEBITS
_FIX_Y = (reference.fix(0.29900), reference.fix(0.58700), reference.fix(0.11400))
_FIX_CB = (-reference.fix(0.16874), -reference.fix(0.33126), reference.fix(0.50000))
_FIX_CR = (reference.fix(0.50000), -reference.fix(0.41869), -reference.fix(0.08131))
_ONE_HALF = reference.ONE_HALF
_CBCR_OFFSET = (128 << reference.SCALEBITS) + reference.ONE_HALF - 1

_jit = njit(cache=True, nogil=True)
_pjit = njit(cache=True, nogil=True, parallel=True)


# --------------------------------------------------------------------------------------------
# dequantize + frequency band selection + block -> channel layout


@_jit
def _dequantize_row(coef, table, zz, fy, fx, mean, std, normalize, out, b, i):
    """One block row ``i`` of image ``b``: all ``n`` channels, ``fy`` output rows each."""
    bw = coef.shape[2]
    t = b if table.shape[0] > 1 else 0
    for k in range(zz.shape[0]):
        z = zz[k]
        q = table[t, z]
        m = mean[k]
        s = std[k]
        row = out[b, k, i * fy]
        if fx == 1:
            for j in range(bw):
                v = np.float32(np.int64(coef[b, i, j, z]) * q)
                if normalize:
                    v = (v - m) / s
                row[j] = v
        else:
            for j in range(bw):
                v = np.float32(np.int64(coef[b, i, j, z]) * q)
                if normalize:
                    v = (v - m) / s
                for dx in range(fx):
                    row[j * fx + dx] = v
        for dy in range(1, fy):
            out[b, k, i * fy + dy, :] = row


@_jit
def _dequantize_serial(coef, table, zz, fy, fx, mean, std, normalize, out):
    for b in range(coef.shape[0]):
        for i in range(coef.shape[1]):
            _dequantize_row(coef, table, zz, fy, fx, mean, std, normalize, out, b, i)


@_pjit
def _dequantize_parallel(coef, table, zz, fy, fx, mean, std, normalize, out):
    bh = coef.shape[1]
    for r in prange(coef.shape[0] * bh):
        _dequantize_row(coef, table, zz, fy, fx, mean, std, normalize, out, r // bh, r % bh)


def dequantize_select(coef, table, zz, fy, fx, mean, std, normalize, out) -> None:
    """Write ``reference.dequantize_select`` of ``coef`` ``[B, bh, bw, 64]`` into ``out``
    ``[B, n, bh * fy, bw * fx]``; ``table`` is int64 ``[T, 64]``, ``mean``/``std`` float32
    ``[n]`` (ignored unless ``normalize``)."""
    blocks = coef.shape[0] * coef.shape[1] * coef.shape[2]
    kernel = _dequantize_parallel if blocks >= PARALLEL_MIN_BLOCKS else _dequantize_serial
    kernel(coef, table, zz, fy, fx, mean, std, normalize, out)


# --------------------------------------------------------------------------------------------
# geometric and quality operations on coefficients


@_jit
def hflip(coef):
    """``reference.hflip`` of ``[B, bh, bw, 8, 8]`` blocks."""
    out = np.empty_like(coef)
    nb, bh, bw = coef.shape[0], coef.shape[1], coef.shape[2]
    for b in range(nb):
        for i in range(bh):
            for j in range(bw):
                src = coef[b, i, bw - 1 - j]
                dst = out[b, i, j]
                for u in range(8):
                    for v in range(0, 8, 2):
                        dst[u, v] = src[u, v]
                        dst[u, v + 1] = -src[u, v + 1]
    return out


def crop(coef, top, left, height, width):
    """``reference.crop``: a strided copy, which NumPy already does at memory speed."""
    return np.ascontiguousarray(coef[..., top : top + height, left : left + width, :, :])


@_jit
def requantize(coef, table_from, table_to):
    """``reference.requantize`` of ``[B, bh, bw, 64]`` with int64 ``[T, 64]`` tables."""
    out = np.empty(coef.shape, np.int16)
    for b in range(coef.shape[0]):
        tf = table_from[b if table_from.shape[0] > 1 else 0]
        tt = table_to[b if table_to.shape[0] > 1 else 0]
        for i in range(coef.shape[1]):
            for j in range(coef.shape[2]):
                for z in range(64):
                    value = np.int64(coef[b, i, j, z]) * tf[z]
                    divisor = tt[z]
                    magnitude = (abs(value) + divisor // 2) // divisor
                    result = magnitude if value >= 0 else -magnitude
                    out[b, i, j, z] = min(max(result, -32768), 32767)
    return out


# --------------------------------------------------------------------------------------------
# 8x8 DCT


@_jit
def _idct_block(src, dst, d, scale):
    """``dst = d^T (src * scale) d / 8`` for one 8x8 block, in float64 (separable, two passes);
    ``d`` is ``reference.dct_matrix_scaled()``."""
    tmp = np.empty((8, 8), np.float64)
    for u in range(8):
        for x in range(8):
            acc = 0.0
            for v in range(8):
                acc += np.float64(src[u, v]) * scale[u, v] * d[v, x]
            tmp[u, x] = acc
    for y in range(8):
        for x in range(8):
            acc = 0.0
            for u in range(8):
                acc += d[u, y] * tmp[u, x]
            dst[y, x] = acc * 0.125


@_jit
def _fdct_block(src, dst, d, offset):
    """``dst = d (src + offset) d^T / 8`` for one 8x8 block, in float64."""
    tmp = np.empty((8, 8), np.float64)
    for y in range(8):
        for v in range(8):
            acc = 0.0
            for x in range(8):
                acc += (np.float64(src[y, x]) + offset) * d[v, x]
            tmp[y, v] = acc
    for u in range(8):
        for v in range(8):
            acc = 0.0
            for y in range(8):
                acc += d[u, y] * tmp[y, v]
            dst[u, v] = acc * 0.125


@_jit
def _idct_many(blocks, d):
    out = np.empty(blocks.shape, np.float32)
    ones = np.ones((8, 8), np.float64)
    work = np.empty((8, 8), np.float64)
    for b in range(blocks.shape[0]):
        _idct_block(blocks[b], work, d, ones)
        for y in range(8):
            for x in range(8):
                out[b, y, x] = work[y, x]
    return out


@_jit
def _fdct_many(blocks, d):
    out = np.empty(blocks.shape, np.float32)
    work = np.empty((8, 8), np.float64)
    for b in range(blocks.shape[0]):
        _fdct_block(blocks[b], work, d, 0.0)
        for u in range(8):
            for v in range(8):
                out[b, u, v] = work[u, v]
    return out


def idct_8x8(blocks):
    """``reference.idct_8x8`` of float32 ``[N, 8, 8]``."""
    return _idct_many(blocks, _DCT)


def fdct_8x8(blocks):
    """``reference.fdct_8x8`` of float32 ``[N, 8, 8]``."""
    return _fdct_many(blocks, _DCT)


@_jit
def _samples_row(coef, table, d, out, b, i):
    t = b if table.shape[0] > 1 else 0
    scale = table[t].astype(np.float64)
    work = np.empty((8, 8), np.float64)
    for j in range(coef.shape[2]):
        _idct_block(coef[b, i, j], work, d, scale)
        for y in range(8):
            for x in range(8):
                p = np.floor(work[y, x] + 128.5)
                out[b, i * 8 + y, j * 8 + x] = np.uint8(min(max(p, 0.0), 255.0))


@_jit
def _samples_serial(coef, table, d, out):
    for b in range(coef.shape[0]):
        for i in range(coef.shape[1]):
            _samples_row(coef, table, d, out, b, i)


@_pjit
def _samples_parallel(coef, table, d, out):
    bh = coef.shape[1]
    for r in prange(coef.shape[0] * bh):
        _samples_row(coef, table, d, out, r // bh, r % bh)


def samples_from_blocks(coef, table):
    """``reference.samples_from_blocks`` of ``[B, bh, bw, 8, 8]`` with int64 ``[T, 8, 8]``."""
    nb, bh, bw = coef.shape[:3]
    out = np.empty((nb, bh * 8, bw * 8), np.uint8)
    kernel = _samples_parallel if nb * bh * bw >= PARALLEL_MIN_BLOCKS else _samples_serial
    kernel(coef, table, _DCT, out)
    return out


@_jit
def _blocks_row(plane, table, d, out, b, i):
    t = b if table.shape[0] > 1 else 0
    work = np.empty((8, 8), np.float64)
    for j in range(out.shape[2]):
        _fdct_block(plane[b, i * 8 : i * 8 + 8, j * 8 : j * 8 + 8], work, d, -128.0)
        for u in range(8):
            for v in range(8):
                q = np.floor(abs(work[u, v]) / table[t, u, v] + 0.5)
                q = min(q, 32767.0) if work[u, v] >= 0 else -min(q, 32768.0)
                out[b, i, j, u, v] = np.int16(q)


@_jit
def _blocks_serial(plane, table, d, out):
    for b in range(out.shape[0]):
        for i in range(out.shape[1]):
            _blocks_row(plane, table, d, out, b, i)


@_pjit
def _blocks_parallel(plane, table, d, out):
    bh = out.shape[1]
    for r in prange(out.shape[0] * bh):
        _blocks_row(plane, table, d, out, r // bh, r % bh)


def blocks_from_samples(plane, table):
    """``reference.blocks_from_samples`` of uint8 ``[B, 8 bh, 8 bw]`` with int64 ``[T, 8, 8]``."""
    nb, h, w = plane.shape
    out = np.empty((nb, h // 8, w // 8, 8, 8), np.int16)
    kernel = _blocks_parallel if out.shape[0] * out.shape[1] * out.shape[2] >= PARALLEL_MIN_BLOCKS else _blocks_serial
    kernel(plane, table, _DCT, out)
    return out


# --------------------------------------------------------------------------------------------
# upsampling and colour


@_jit
def _upsample(plane, fy, fx, height, width, fancy):
    hin = (height + fy - 1) // fy
    win = (width + fx - 1) // fx
    out = np.empty((height, width), np.uint8)
    if not fancy or (fy == 1 and fx == 1) or (fx == 2 and win <= 2):
        for y in range(height):
            for x in range(width):
                out[y, x] = plane[y // fy, x // fx]
        return out
    for y in range(height):
        i = y // fy
        if fy == 2:
            # nearest input row, and the next nearest (above for even, below for odd rows)
            other = max(i - 1, 0) if y % 2 == 0 else min(i + 1, hin - 1)
        else:
            other = i
        for x in range(width):
            if fx == 1:
                # h1v2: vertical 3:1 with biases +1 (upper) / +2 (lower)
                s = 3 * np.int32(plane[i, x]) + np.int32(plane[other, x])
                out[y, x] = np.uint8((s + 1 + (y % 2)) >> 2)
            else:
                j = x // 2
                jn = max(j - 1, 0) if x % 2 == 0 else min(j + 1, win - 1)
                if fy == 1:
                    # h2v1: horizontal 3:1 with biases +1 (left) / +2 (right)
                    s = 3 * np.int32(plane[i, j]) + np.int32(plane[i, jn])
                    out[y, x] = np.uint8((s + 1 + (x % 2)) >> 2)
                else:
                    # h2v2: column sums 3:1 vertically, then 3:1 horizontally, biases +8 / +7
                    this = 3 * np.int32(plane[i, j]) + np.int32(plane[other, j])
                    near = 3 * np.int32(plane[i, jn]) + np.int32(plane[other, jn])
                    out[y, x] = np.uint8((3 * this + near + 8 - (x % 2)) >> 4)
    return out


def upsample_plane(plane, fy, fx, height, width, fancy):
    """``reference.upsample_plane`` of a uint8 ``[h, w]`` plane."""
    return _upsample(plane, fy, fx, height, width, fancy)


@_jit
def _ycbcr_to_rgb(y, cb, cr, cr_r, cb_b, cr_g, cb_g):
    nb, h, w = y.shape
    out = np.empty((nb, h, w, 3), np.uint8)
    for b in range(nb):
        for r in range(h):
            for c in range(w):
                luma = np.int64(y[b, r, c])
                vb = cb[b, r, c]
                vr = cr[b, r, c]
                red = luma + cr_r[vr]
                green = luma + ((cb_g[vb] + cr_g[vr]) >> _SCALEBITS)
                blue = luma + cb_b[vb]
                out[b, r, c, 0] = min(max(red, 0), 255)
                out[b, r, c, 1] = min(max(green, 0), 255)
                out[b, r, c, 2] = min(max(blue, 0), 255)
    return out


def ycbcr_to_rgb(y, cb, cr):
    """``reference.ycbcr_to_rgb`` of uint8 ``[B, H, W]`` planes."""
    return _ycbcr_to_rgb(y, cb, cr, _CR_R, _CB_B, _CR_G, _CB_G)


@_jit
def rgb_to_ycbcr(rgb):
    """``reference.rgb_to_ycbcr`` of uint8 ``[B, H, W, 3]``, giving ``[B, 3, H, W]``."""
    nb, h, w = rgb.shape[0], rgb.shape[1], rgb.shape[2]
    out = np.empty((nb, 3, h, w), np.uint8)
    for b in range(nb):
        for r in range(h):
            for c in range(w):
                red = np.int64(rgb[b, r, c, 0])
                green = np.int64(rgb[b, r, c, 1])
                blue = np.int64(rgb[b, r, c, 2])
                y = _FIX_Y[0] * red + _FIX_Y[1] * green + _FIX_Y[2] * blue + _ONE_HALF
                cb = _FIX_CB[0] * red + _FIX_CB[1] * green + _FIX_CB[2] * blue + _CBCR_OFFSET
                cr = _FIX_CR[0] * red + _FIX_CR[1] * green + _FIX_CR[2] * blue + _CBCR_OFFSET
                out[b, 0, r, c] = y >> _SCALEBITS
                out[b, 1, r, c] = cb >> _SCALEBITS
                out[b, 2, r, c] = cr >> _SCALEBITS
    return out
