"""Numba CUDA kernels with the semantics of ``reference.py``.

Importing this module imports ``numba.cuda`` but needs no GPU: kernels compile on first launch.
``cdomain.kernels`` imports it only when a CUDA array arrives (through ``_device.py``, which
turns torch tensors into device views and picks the stream). Each launcher takes device arrays
already shaped as the CPU kernels take them (leading axes collapsed) and a stream, or None for
the default stream. Every kernel uses a grid-stride loop over its output elements, so any
launch size is correct; one thread per output element keeps writes coalesced. Like ``cpu.py``,
the kernels compile in no global of another file: the DCT matrix and colour tables from
``reference.py`` arrive as arguments, libjpeg's colour weights are computed here.

The DCT kernels accumulate in float64 in the same order as the CPU kernels. The CUDA compiler
may contract multiply-adds into FMAs, so a decoded sample that lands within rounding noise of
a half can differ from the CPU result by one grey level; coefficient-only kernels are exact.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

THREADS = 256
_SCALEBITS = 16  # reference.SCALEBITS


def _fix(x: float) -> int:
    """libjpeg's ``FIX(x)`` with ``_SCALEBITS`` fractional bits (``reference.fix``)."""
    return int(x * (1 << _SCALEBITS) + 0.5)


# libjpeg's colour constants, defined in this file like everything the kernels compile in.
_ONE_HALF = 1 << (_SCALEBITS - 1)
_CBCR_OFFSET = (128 << _SCALEBITS) + _ONE_HALF - 1
_FY0, _FY1, _FY2 = _fix(0.29900), _fix(0.58700), _fix(0.11400)
_FB0, _FB1, _FB2 = -_fix(0.16874), -_fix(0.33126), _fix(0.50000)
_FR0, _FR1, _FR2 = _fix(0.50000), -_fix(0.41869), -_fix(0.08131)


def _grid(total: int) -> int:
    return max(1, min(math.ceil(total / THREADS), 65535))


def _launch(kernel, total: int, stream, *args) -> None:
    """Launch ``kernel`` over ``total`` output elements (``THREADS`` per block, a grid-stride
    loop covers what the grid does not); nothing for an empty output."""
    if total == 0:
        return
    if stream is None:
        kernel[_grid(total), THREADS](*args)
    else:
        kernel[_grid(total), THREADS, stream](*args)


@cuda.jit(device=True)
def _block_coefficient(idx, height, width):
    """``(b, i, j, u, v)``: where flat index ``idx`` falls in C-ordered ``[B, height, width, 8, 8]``
    coefficient blocks (sample, block row and column, frequency row and column). One thread per
    output coefficient: every kernel that writes such blocks (here and in ``rescale_cuda.py``)
    maps its thread index through this one function."""
    v = idx % 8
    u = (idx // 8) % 8
    j = (idx // 64) % width
    i = (idx // (64 * width)) % height
    b = idx // (64 * width * height)
    return b, i, j, u, v


# --------------------------------------------------------------------------------------------
# coefficient kernels


@cuda.jit
def _dequantize_kernel(coef, table, zz, fy, fx, mean, std, normalize, out):
    nb, n, h, w = out.shape
    total = nb * n * h * w
    start, stride = cuda.grid(1), cuda.gridsize(1)
    multi = table.shape[0] > 1
    for idx in range(start, total, stride):
        x = idx % w
        y = (idx // w) % h
        k = (idx // (w * h)) % n
        b = idx // (w * h * n)
        z = zz[k]
        t = b if multi else 0
        v = np.float32(np.int64(coef[b, y // fy, x // fx, z // 8, z % 8]) * table[t, z])
        if normalize:
            v = (v - mean[k]) / std[k]
        out[b, k, y, x] = v


def dequantize_select(coef, table, zz, fy, fx, mean, std, normalize, out, stream=None) -> None:
    """``coef`` int16 ``[B, bh, bw, 8, 8]``, ``table`` int64 ``[T, 64]``, ``out`` float32
    ``[B, n, bh * fy, bw * fx]`` (any strides)."""
    total = out.shape[0] * out.shape[1] * out.shape[2] * out.shape[3]
    _launch(_dequantize_kernel, total, stream, coef, table, zz, fy, fx, mean, std, normalize, out)


@cuda.jit
def _hflip_kernel(coef, out):
    nb, bh, bw = coef.shape[0], coef.shape[1], coef.shape[2]
    total = nb * bh * bw * 64
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for idx in range(start, total, stride):
        b, i, j, u, v = _block_coefficient(idx, bh, bw)
        value = coef[b, i, bw - 1 - j, u, v]
        out[b, i, j, u, v] = -value if v % 2 == 1 else value


def hflip(coef, out, stream=None) -> None:
    """``coef`` and ``out`` ``[B, bh, bw, 8, 8]`` of one dtype."""
    _launch(_hflip_kernel, out.size, stream, coef, out)


@cuda.jit
def _crop_kernel(coef, top, left, out):
    nb, h, w = out.shape[0], out.shape[1], out.shape[2]
    total = nb * h * w * 64
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for idx in range(start, total, stride):
        b, i, j, u, v = _block_coefficient(idx, h, w)
        out[b, i, j, u, v] = coef[b, top + i, left + j, u, v]


def crop(coef, top, left, out, stream=None) -> None:
    """``out [B, height, width, 8, 8] = coef[B, top:, left:, 8, 8]``."""
    _launch(_crop_kernel, out.size, stream, coef, top, left, out)


@cuda.jit
def _requantize_kernel(coef, table_from, table_to, out):
    nb, bh, bw = coef.shape[0], coef.shape[1], coef.shape[2]
    total = nb * bh * bw * 64
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for idx in range(start, total, stride):
        z = idx % 64
        j = (idx // 64) % bw
        i = (idx // (64 * bw)) % bh
        b = idx // (64 * bw * bh)
        tf = table_from[b if table_from.shape[0] > 1 else 0, z]
        tt = table_to[b if table_to.shape[0] > 1 else 0, z]
        value = np.int64(coef[b, i, j, z // 8, z % 8]) * tf
        magnitude = (abs(value) + tt // 2) // tt
        result = magnitude if value >= 0 else -magnitude
        out[b, i, j, z // 8, z % 8] = min(max(result, -32768), 32767)


def requantize(coef, table_from, table_to, out, stream=None) -> None:
    """``coef``/``out`` int16 ``[B, bh, bw, 8, 8]``, tables int64 ``[T, 64]``."""
    _launch(_requantize_kernel, out.size, stream, coef, table_from, table_to, out)


# --------------------------------------------------------------------------------------------
# the batch path: one launch dequantizes a whole batch of packed samples


@cuda.jit(device=True)
def _batch_value(value, tf, tt, requant, m, s, normalize):
    """One dequantized (optionally requantized first, then normalised) coefficient."""
    q = tf
    if requant:
        scaled = np.int64(value) * tf
        magnitude = (abs(scaled) + tt // 2) // tt
        signed = magnitude if scaled >= 0 else -magnitude
        value = min(max(signed, -32768), 32767)
        q = tt
    v = np.float32(np.int64(value) * q)
    if normalize:
        v = (v - m) / s
    return v


@cuda.jit
def _dequantize_batch_kernel(luma, chroma, source, target, requant, mean, std, normalize, fy, fx, out_luma,
                             out_chroma):
    nb, n, bh, bw = luma.shape
    ch2, hc, wc = out_chroma.shape[1], out_chroma.shape[2], out_chroma.shape[3]
    luma_total = nb * n * bh * bw
    total = luma_total + nb * ch2 * hc * wc
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for idx in range(start, total, stride):
        if idx < luma_total:
            x = idx % bw
            y = (idx // bw) % bh
            k = (idx // (bw * bh)) % n
            b = idx // (bw * bh * n)
            out_luma[b, k, y, x] = _batch_value(luma[b, k, y, x], source[b, 0, k], target[b, 0, k], requant,
                                                mean[k], std[k], normalize)
        else:
            r = idx - luma_total
            x = r % wc
            y = (r // wc) % hc
            channel = (r // (wc * hc)) % ch2
            b = r // (wc * hc * ch2)
            slot = channel // n
            k = channel % n
            component = slot + 1
            out_chroma[b, channel, y, x] = _batch_value(
                chroma[b, slot, k, y // fy, x // fx], source[b, component, k], target[b, component, k], requant,
                mean[component * n + k], std[component * n + k], normalize,
            )


def dequantize_batch(luma, chroma, source, target, requant, fy, fx, mean, std, normalize, out_luma, out_chroma,
                     stream=None) -> None:
    """``luma`` int16 ``[B, n, bh, bw]``, ``chroma`` ``[B, 2, n, ch, cw]``, ``source``/``target``
    int64 ``[B, 3, n]`` (zigzag order; ``target`` ignored unless ``requant``), outputs float32
    ``[B, n, bh, bw]`` and ``[B, 2n, ch * fy, cw * fx]`` (any strides). One launch."""
    total = out_luma.size + out_chroma.size
    _launch(_dequantize_batch_kernel, total, stream, luma, chroma, source, target, requant, mean, std, normalize,
            fy, fx, out_luma, out_chroma)


# --------------------------------------------------------------------------------------------
# DCT kernels: one thread per output value, same float64 operation order as cpu.py


@cuda.jit(device=True)
def _idct_value(block, table, t, d, y, x):
    """``sum_u d[u, y] * (sum_v F[u, v] q[u, v] d[v, x]) / 8`` for one sample."""
    acc = 0.0
    for u in range(8):
        inner = 0.0
        for v in range(8):
            inner += np.float64(block[u, v]) * np.float64(table[t, u * 8 + v]) * d[v, x]
        acc += d[u, y] * inner
    return acc * 0.125


@cuda.jit(device=True)
def _fdct_value(block, offset, d, u, v):
    """``sum_y d[u, y] * (sum_x (f[y, x] + offset) d[v, x]) / 8`` for one coefficient."""
    acc = 0.0
    for y in range(8):
        inner = 0.0
        for x in range(8):
            inner += (np.float64(block[y, x]) + offset) * d[v, x]
        acc += d[u, y] * inner
    return acc * 0.125


@cuda.jit
def _idct_kernel(blocks, ones, d, out):
    total = blocks.shape[0] * 64
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for idx in range(start, total, stride):
        b = idx // 64
        y = (idx // 8) % 8
        x = idx % 8
        out[b, y, x] = _idct_value(blocks[b], ones, 0, d, y, x)


@cuda.jit
def _fdct_kernel(blocks, d, out):
    total = blocks.shape[0] * 64
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for idx in range(start, total, stride):
        b = idx // 64
        u = (idx // 8) % 8
        v = idx % 8
        out[b, u, v] = _fdct_value(blocks[b], 0.0, d, u, v)


def idct_8x8(blocks, ones, d, out, stream=None) -> None:
    """float32 ``[N, 8, 8]``; ``ones`` float64 ``[1, 64]`` of ones, ``d`` the scaled DCT matrix."""
    _launch(_idct_kernel, out.size, stream, blocks, ones, d, out)


def fdct_8x8(blocks, d, out, stream=None) -> None:
    """float32 ``[N, 8, 8]``; ``d`` the scaled DCT matrix."""
    _launch(_fdct_kernel, out.size, stream, blocks, d, out)


@cuda.jit
def _samples_kernel(coef, table, d, out):
    nb, h, w = out.shape
    total = nb * h * w
    start, stride = cuda.grid(1), cuda.gridsize(1)
    multi = table.shape[0] > 1
    for idx in range(start, total, stride):
        px = idx % w
        py = (idx // w) % h
        b = idx // (w * h)
        value = _idct_value(coef[b, py // 8, px // 8], table, b if multi else 0, d, py % 8, px % 8)
        p = math.floor(value + 128.5)
        out[b, py, px] = np.uint8(min(max(p, 0.0), 255.0))


def samples_from_blocks(coef, table, d, out, stream=None) -> None:
    """int16 ``[B, bh, bw, 8, 8]`` -> uint8 ``[B, 8 bh, 8 bw]``; ``table`` float64/int64 ``[T, 64]``."""
    _launch(_samples_kernel, out.size, stream, coef, table, d, out)


@cuda.jit
def _blocks_kernel(plane, table, d, out):
    nb, bh, bw = out.shape[0], out.shape[1], out.shape[2]
    total = nb * bh * bw * 64
    start, stride = cuda.grid(1), cuda.gridsize(1)
    multi = table.shape[0] > 1
    for idx in range(start, total, stride):
        b, i, j, u, v = _block_coefficient(idx, bh, bw)
        block = plane[b, i * 8 : i * 8 + 8, j * 8 : j * 8 + 8]
        value = _fdct_value(block, -128.0, d, u, v)
        q = math.floor(abs(value) / table[b if multi else 0, u * 8 + v] + 0.5)
        q = min(q, 32767.0) if value >= 0 else -min(q, 32768.0)
        out[b, i, j, u, v] = np.int16(q)


def blocks_from_samples(plane, table, d, out, stream=None) -> None:
    """uint8 ``[B, 8 bh, 8 bw]`` -> int16 ``[B, bh, bw, 8, 8]``; ``table`` int64 ``[T, 64]``."""
    _launch(_blocks_kernel, out.size, stream, plane, table, d, out)


# --------------------------------------------------------------------------------------------
# upsampling and colour


@cuda.jit
def _upsample_kernel(plane, fy, fx, fancy, out):
    height, width = out.shape
    hin = (height + fy - 1) // fy
    win = (width + fx - 1) // fx
    repeat = (not fancy) or (fy == 1 and fx == 1) or (fx == 2 and win <= 2)
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for idx in range(start, height * width, stride):
        x = idx % width
        y = idx // width
        i = y // fy
        if repeat:
            out[y, x] = plane[i, x // fx]
            continue
        other = i
        if fy == 2:
            other = max(i - 1, 0) if y % 2 == 0 else min(i + 1, hin - 1)
        if fx == 1:
            s = 3 * np.int32(plane[i, x]) + np.int32(plane[other, x])
            out[y, x] = np.uint8((s + 1 + (y % 2)) >> 2)
        else:
            j = x // 2
            jn = max(j - 1, 0) if x % 2 == 0 else min(j + 1, win - 1)
            if fy == 1:
                s = 3 * np.int32(plane[i, j]) + np.int32(plane[i, jn])
                out[y, x] = np.uint8((s + 1 + (x % 2)) >> 2)
            else:
                this = 3 * np.int32(plane[i, j]) + np.int32(plane[other, j])
                near = 3 * np.int32(plane[i, jn]) + np.int32(plane[other, jn])
                out[y, x] = np.uint8((3 * this + near + 8 - (x % 2)) >> 4)


def upsample_plane(plane, fy, fx, fancy, out, stream=None) -> None:
    """uint8 ``[h, w]`` -> uint8 ``out [H, W]`` (see ``reference.upsample_plane``)."""
    _launch(_upsample_kernel, out.size, stream, plane, fy, fx, fancy, out)


@cuda.jit
def _ycbcr_to_rgb_kernel(y, cb, cr, cr_r, cb_b, cr_g, cb_g, out):
    nb, h, w = y.shape
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for idx in range(start, nb * h * w, stride):
        c = idx % w
        r = (idx // w) % h
        b = idx // (w * h)
        luma = np.int64(y[b, r, c])
        vb = cb[b, r, c]
        vr = cr[b, r, c]
        out[b, r, c, 0] = min(max(luma + cr_r[vr], 0), 255)
        out[b, r, c, 1] = min(max(luma + ((cb_g[vb] + cr_g[vr]) >> _SCALEBITS), 0), 255)
        out[b, r, c, 2] = min(max(luma + cb_b[vb], 0), 255)


def ycbcr_to_rgb(y, cb, cr, tables, out, stream=None) -> None:
    """uint8 ``[B, H, W]`` planes -> ``out [B, H, W, 3]``; ``tables`` from
    ``reference.ycbcr_tables()`` on the device."""
    _launch(_ycbcr_to_rgb_kernel, y.size, stream, y, cb, cr, *tables, out)


@cuda.jit
def _rgb_to_ycbcr_kernel(rgb, out):
    nb, h, w = rgb.shape[0], rgb.shape[1], rgb.shape[2]
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for idx in range(start, nb * h * w, stride):
        c = idx % w
        r = (idx // w) % h
        b = idx // (w * h)
        red = np.int64(rgb[b, r, c, 0])
        green = np.int64(rgb[b, r, c, 1])
        blue = np.int64(rgb[b, r, c, 2])
        out[b, 0, r, c] = (_FY0 * red + _FY1 * green + _FY2 * blue + _ONE_HALF) >> _SCALEBITS
        out[b, 1, r, c] = (_FB0 * red + _FB1 * green + _FB2 * blue + _CBCR_OFFSET) >> _SCALEBITS
        out[b, 2, r, c] = (_FR0 * red + _FR1 * green + _FR2 * blue + _CBCR_OFFSET) >> _SCALEBITS


def rgb_to_ycbcr(rgb, out, stream=None) -> None:
    """uint8 ``[B, H, W, 3]`` -> uint8 ``out [B, 3, H, W]``."""
    _launch(_rgb_to_ycbcr_kernel, rgb.shape[0] * rgb.shape[1] * rgb.shape[2], stream, rgb, out)
