"""Numba CPU kernels, one per operation of ``reference.py`` and with the same semantics.

The launchers here (the functions without a leading underscore) take validated NumPy arrays
that ``_host.py`` has already normalised: leading batch axes collapsed to one, tables as int64
``[T, 64]`` or ``[T, 8, 8]`` with ``T`` 1 or the batch size. All kernels are compiled with
``cache=True`` (compiled once per machine) and ``nogil=True`` (callable from loader threads).

Threads: :func:`dequantize_select`, the DCTs and the block<->sample conversions are written
once with ``numba.prange`` and compiled twice by :class:`_Threaded`, with ``parallel=True`` and
without (where ``prange`` is plain ``range``, so both compute the same values in the same
order per element). The parallel compilation runs only on batches large enough to pay for the
thread start-up (a data-loader worker that converts one image at a time should not fan out into
threads of its own) and only in one thread at a time.

On-disk cache: Numba checks only the timestamp of the file that defines a cached function, so
compiled code here reads no global defined in another file; a constant it would take from
``reference.py`` would stay frozen at its old value after a change there. The constants the
kernels compile in (the DCT matrix, libjpeg's colour weights) are computed in this file, and
the tests check them against ``reference.py``; the colour lookup tables are arguments.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit, prange

from . import reference

#: Whether the kernels that have a multi-threaded version may use it (``numba.set_num_threads``
#: sets how many threads). Turn off in processes that already run one per core.
PARALLEL = True
#: Below this many 8x8 blocks per call the serial kernels are used.
PARALLEL_MIN_BLOCKS = 4096

#: Whether :func:`dequantize_batch` may use threads. Off: it is memory-bound (about 1.2 ms for 64
#: images of 224x224 at 16 frequencies on one core) and runs in a loader's main process, which
#: shares the cores with the loader's workers; on a loaded machine its threads waited for each
#: other 5-15x longer than the serial loop took.
BATCH_PARALLEL = False

#: Blocks per work item of the DCT kernels.
_CHUNK = 256


def _dct_matrix_scaled() -> np.ndarray:
    """``reference.dct_matrix_scaled()``, computed here (see the module docstring)."""
    k = np.arange(8)[:, None]
    x = np.arange(8)[None, :]
    matrix = np.sqrt(2.0) * np.cos((2 * x + 1) * k * np.pi / 16)
    matrix[0] = 1.0
    return matrix


_SCALEBITS = 16  # reference.SCALEBITS


def _fix(x: float) -> int:
    """libjpeg's ``FIX(x)`` with ``_SCALEBITS`` fractional bits (``reference.fix``)."""
    return int(x * (1 << _SCALEBITS) + 0.5)


# Compile-time constants of the kernels below, all defined in this file.
_DCT = _dct_matrix_scaled()
_ONE_HALF = 1 << (_SCALEBITS - 1)
_CBCR_OFFSET = (128 << _SCALEBITS) + _ONE_HALF - 1
_FIX_Y = (_fix(0.29900), _fix(0.58700), _fix(0.11400))
_FIX_CB = (-_fix(0.16874), -_fix(0.33126), _fix(0.50000))
_FIX_CR = (_fix(0.50000), -_fix(0.41869), -_fix(0.08131))

# The colour lookup tables are arguments of ``_ycbcr_to_rgb``, so they may come from reference.
_YCC_TO_RGB = tuple(np.ascontiguousarray(t) for t in reference.ycbcr_tables())

_jit = njit(cache=True, nogil=True)


def use_parallel(blocks: int) -> bool:
    """Whether a call over ``blocks`` 8x8 blocks should use the multi-threaded kernel."""
    return PARALLEL and blocks >= PARALLEL_MIN_BLOCKS


# Numba's default (workqueue) threading layer aborts the process if two threads enter parallel
# kernels at once; a thread that finds another one inside runs the serial kernel instead.
_PARALLEL_LOCK = threading.Lock()


def _renamed(body: Callable, suffix: str) -> Callable:
    """A copy of ``body`` named ``<name>__<suffix>``.

    Numba names its cache files after the function and leaves the ``parallel`` option out of
    the cache key, so the serial and the parallel compilation of one body need two names.
    """
    copy = types.FunctionType(
        body.__code__, body.__globals__, f"{body.__name__}__{suffix}", body.__defaults__, body.__closure__
    )
    copy.__qualname__ = f"{body.__qualname__}__{suffix}"
    copy.__module__ = body.__module__
    copy.__doc__ = body.__doc__
    return copy


class _Threaded:
    """Decorator: one kernel body, written with ``prange``, compiled serial and parallel.

    Calling the result with the number of 8x8 blocks the call covers, then the kernel's
    arguments, runs whichever compilation fits.
    """

    def __init__(self, body: Callable):
        self.serial = njit(cache=True, nogil=True)(_renamed(body, "serial"))
        self.parallel = njit(cache=True, nogil=True, parallel=True)(_renamed(body, "parallel"))
        self.__doc__ = body.__doc__

    def __call__(self, blocks: int, *args: Any) -> None:
        """Run the kernel on ``args``, in parallel when the call covers at least
        ``PARALLEL_MIN_BLOCKS`` blocks and no other thread is inside a parallel kernel."""
        if use_parallel(blocks) and _PARALLEL_LOCK.acquire(blocking=False):
            try:
                self.parallel(*args)
            finally:
                _PARALLEL_LOCK.release()
        else:
            self.serial(*args)


# --------------------------------------------------------------------------------------------
# dequantize + frequency band selection + block -> channel layout


@_jit
def _dequantize_plane(coef, scale, zz, fy, fx, mean, std, normalize, out, b, k):
    """Output channel ``k`` of image ``b`` of ``out [B, n, bh * fy, bw * fx]``, front to back.

    ``coef`` is ``[B * bh * bw, 64]``. One channel at a time keeps the writes sequential (the
    output is the bigger side); the reads gather one coefficient per block from the image's
    blocks, which stay in cache. ``float32(c) * float32(q)`` is the correctly rounded exact
    product, the same value as ``float32(c * q)`` in integers. Normalisation is a second pass
    over each row (same operations, but the first loop stays branch-free).
    """
    bw = out.shape[3] // fx
    bh = out.shape[2] // fy
    z = zz[k]
    q = scale[b if scale.shape[0] > 1 else 0, k]
    base = b * bh * bw
    for i in range(bh):
        y0 = i * fy
        r = base + i * bw
        if fx == 1:
            for j in range(bw):
                out[b, k, y0, j] = np.float32(coef[r + j, z]) * q
        elif fx == 2:
            for j in range(bw):
                v = np.float32(coef[r + j, z]) * q
                out[b, k, y0, 2 * j] = v
                out[b, k, y0, 2 * j + 1] = v
        else:
            for j in range(bw):
                v = np.float32(coef[r + j, z]) * q
                for dx in range(fx):
                    out[b, k, y0, j * fx + dx] = v
        if normalize:
            m = mean[k]
            s = std[k]
            for x in range(bw * fx):
                out[b, k, y0, x] = (out[b, k, y0, x] - m) / s
        for dy in range(1, fy):
            for x in range(bw * fx):
                out[b, k, y0 + dy, x] = out[b, k, y0, x]


@_jit
def _dequantize_flat_plane(coef, scale, zz, mean, std, normalize, out, b, k):
    """``_dequantize_plane`` without upsampling, for ``out [B, n, bh * bw]`` (planes contiguous):
    one long loop per channel."""
    nblk = out.shape[2]
    z = zz[k]
    q = scale[b if scale.shape[0] > 1 else 0, k]
    base = b * nblk
    for r in range(nblk):
        out[b, k, r] = np.float32(coef[base + r, z]) * q
    if normalize:
        m = mean[k]
        s = std[k]
        for r in range(nblk):
            out[b, k, r] = (out[b, k, r] - m) / s


@_Threaded
def _dequantize(coef, scale, zz, fy, fx, mean, std, normalize, out):
    n = zz.shape[0]
    for r in prange(out.shape[0] * n):
        _dequantize_plane(coef, scale, zz, fy, fx, mean, std, normalize, out, r // n, r % n)


@_Threaded
def _dequantize_flat(coef, scale, zz, mean, std, normalize, out):
    n = zz.shape[0]
    for r in prange(out.shape[0] * n):
        _dequantize_flat_plane(coef, scale, zz, mean, std, normalize, out, r // n, r % n)


def dequantize_select(
    coef: np.ndarray, table: np.ndarray, zz: np.ndarray, fy: int, fx: int,
    mean: np.ndarray, std: np.ndarray, normalize: bool, out: np.ndarray,
) -> None:
    """Write ``reference.dequantize_select`` of ``coef`` ``[B, bh, bw, 64]`` into ``out``
    ``[B, n, bh * fy, bw * fx]``; ``table`` is int64 ``[T, 64]``, ``mean``/``std`` float32
    ``[n]`` (ignored unless ``normalize``)."""
    nb, bh, bw = coef.shape[:3]
    scale = np.ascontiguousarray(table[:, zz], dtype=np.float32)  # exact: entries < 2**24
    flat = coef.reshape(nb * bh * bw, 64)
    planes = None
    if fy == 1 and fx == 1:
        planes = out.view()
        try:  # merge each channel's rows into one axis when that needs no copy
            planes.shape = (out.shape[0], out.shape[1], bh * bw)
        except AttributeError:
            planes = None
    if planes is not None:
        _dequantize_flat(nb * bh * bw, flat, scale, zz, mean, std, normalize, planes)
    else:
        _dequantize(nb * bh * bw, flat, scale, zz, fy, fx, mean, std, normalize, out)


# --------------------------------------------------------------------------------------------
# the batch path: per-file packing in the workers, one dequantization call per batch


@_jit
def _pack_region(coef, top, left, height, width, flip, zz, out):
    """``out [n, height, width]``: plane ``k`` holds zigzag frequency ``zz[k]`` of the region of
    ``coef [bh, bw, 64]``, mirrored when ``flip`` (reversed block columns, odd horizontal
    frequencies negated as in ``_hflip``). Block by block, each source block read once: on
    coefficients just decoded (the loaders' case) about a tenth faster than plane by plane."""
    n = zz.shape[0]
    signs = np.empty(n, np.int16)
    for k in range(n):
        signs[k] = _HFLIP_SIGN[zz[k]] if flip else np.int16(1)
    for i in range(height):
        row = coef[top + i]
        for j in range(width):
            block = row[left + width - 1 - j if flip else left + j]
            for k in range(n):
                out[k, i, j] = block[zz[k]] * signs[k]


def pack_region(coef: np.ndarray, top: int, left: int, height: int, width: int, flip: bool,
                zz: np.ndarray) -> np.ndarray:
    """``reference.pack_region`` of contiguous ``[bh, bw, 8, 8]`` blocks (one component)."""
    out = np.empty((zz.shape[0], height, width), np.int16)
    _pack_region(coef.reshape(coef.shape[0], coef.shape[1], 64), top, left, height, width, flip, zz, out)
    return out


@_jit
def _pack_colour(y, cb, cr, top, left, height, width, ry, rx, flip, zz, luma, chroma):
    _pack_region(y, top, left, height, width, flip, zz, luma)
    _pack_region(cb, top // ry, left // rx, height // ry, width // rx, flip, zz, chroma[0])
    _pack_region(cr, top // ry, left // rx, height // ry, width // rx, flip, zz, chroma[1])


def pack_colour(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, top: int, left: int, height: int, width: int,
                ry: int, rx: int, flip: bool, zz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pack_region`` of a colour image's three contiguous components in one call: luma
    ``[n, height, width]`` and chroma ``[2, n, height / ry, width / rx]`` (the region in chroma
    blocks is the luma region divided by the chroma ratio ``(ry, rx)``)."""
    n = zz.shape[0]
    luma = np.empty((n, height, width), np.int16)
    chroma = np.empty((2, n, height // ry, width // rx), np.int16)
    blocks = [part.reshape(part.shape[0], part.shape[1], 64) for part in (y, cb, cr)]
    _pack_colour(*blocks, top, left, height, width, ry, rx, flip, zz, luma, chroma)
    return luma, chroma


@_jit
def _batch_plane(coef, slot, component, k, n, source, target, requant, mean, std, normalize, fy, fx, out, b,
                 channel, values):
    """Channel ``channel`` of image ``b`` of ``out``: plane ``coef[b, slot, k]`` (``coef`` is
    ``[B, C, n, h, w]``, frequency ``k``) times table entry ``source[b, component, k]``, after
    requantizing to ``target[b, component, k]`` when ``requant`` (then dequantized with it),
    normalised with entry ``component * n + k`` of ``mean``/``std``, each value repeated
    ``fy x fx`` times.

    Each row of the plane is made in ``values`` (float32 scratch of at least ``w``): dequantized
    in one loop, normalised in a second (both vectorised; a division inside the first would stay
    scalar), then written to its ``fy`` output rows, each value ``fx`` times. Every value is
    normalised once, before it is repeated, with the same float32 operations as the per-image
    kernels, so the results are theirs bit for bit.
    """
    h, w = coef.shape[3], coef.shape[4]
    tf = source[b, component, k]
    q = np.float32(tf)
    tt = np.float64(1.0)
    if requant:
        tt = np.float64(target[b, component, k])
        q = np.float32(target[b, component, k])
    half = np.floor(tt / 2.0)
    m = mean[component * n + k]
    s = std[component * n + k]
    for i in range(h):
        plane_row = coef[b, slot, k, i]
        if requant:  # ``_requantize``'s float64 form of libjpeg's integer rounding
            for j in range(w):
                scaled = np.float64(plane_row[j]) * tf
                magnitude = min(np.floor((abs(scaled) + half) / tt), 32768.0)
                signed = magnitude if scaled >= 0 else -magnitude
                values[j] = np.float32(np.int16(min(signed, 32767.0))) * q
        else:
            for j in range(w):
                values[j] = np.float32(plane_row[j]) * q
        if normalize:
            for j in range(w):
                values[j] = (values[j] - m) / s
        for dy in range(fy):
            row = out[b, channel, i * fy + dy]
            if fx == 1:
                for j in range(w):
                    row[j] = values[j]
            elif fx == 2:
                for j in range(w):
                    row[2 * j] = values[j]
                    row[2 * j + 1] = values[j]
            else:
                for j in range(w):
                    for dx in range(fx):
                        row[j * fx + dx] = values[j]


@_Threaded
def _dequantize_batch(luma, chroma, source, target, requant, mean, std, normalize, fy, fx, out_luma, luma_first,
                      out_chroma, chroma_first):
    n = luma.shape[2]
    width = max(luma.shape[4], chroma.shape[4])
    for b in prange(luma.shape[0]):
        values = np.empty(width, np.float32)
        for k in range(n):
            _batch_plane(luma, 0, 0, k, n, source, target, requant, mean, std, normalize, 1, 1, out_luma, b,
                         luma_first + k, values)
        for c in range(2):
            for k in range(n):
                _batch_plane(chroma, c, c + 1, k, n, source, target, requant, mean, std, normalize, fy, fx,
                             out_chroma, b, chroma_first + c * n + k, values)


def _channel_slices(out_luma: np.ndarray, out_chroma: np.ndarray) -> np.ndarray | None:
    """The C-contiguous ``[B, C, H, W]`` array of which ``out_luma`` and ``out_chroma`` are the
    adjacent channel slices ``[:, :n]`` and ``[:, n:]`` (the merged layout), or None."""
    if out_luma.shape[2:] != out_chroma.shape[2:] or out_luma.strides != out_chroma.strides:
        return None
    batch, n, height, width = out_luma.shape
    channels = n + out_chroma.shape[1]
    item = out_luma.itemsize
    plane = height * width * item
    if out_luma.strides != (channels * plane, plane, width * item, item):
        return None
    if out_chroma.ctypes.data != out_luma.ctypes.data + n * plane:
        return None
    return np.lib.stride_tricks.as_strided(out_luma, (batch, channels, height, width),
                                           (channels * plane, plane, width * item, item))


def dequantize_batch(
    luma: np.ndarray, chroma: np.ndarray, source: np.ndarray, target: np.ndarray | None, fy: int, fx: int,
    mean: np.ndarray, std: np.ndarray, normalize: bool, out_luma: np.ndarray, out_chroma: np.ndarray,
) -> None:
    """Write ``reference.dequantize_batch`` of ``luma [B, n, bh, bw]`` and ``chroma
    [B, 2, n, ch, cw]`` into ``out_luma [B, n, bh, bw]`` and ``out_chroma [B, 2n, ch * fy,
    cw * fx]`` (any strides; the two channel slices of one merged tensor are written through
    that tensor, C-contiguous, which lets the compiler vectorise the stores). ``source`` and
    ``target`` are int64 ``[B, 3, n]`` tables in zigzag order; ``mean``/``std`` float32 ``[3n]``."""
    batch, n, bh, bw = luma.shape
    requant = target is not None
    outputs = (out_luma, 0, out_chroma, 0)
    merged = _channel_slices(out_luma, out_chroma)
    if merged is not None:
        outputs = (merged, 0, merged, n)
    _dequantize_batch(
        batch * bh * bw if BATCH_PARALLEL else 0, luma.reshape(batch, 1, n, bh, bw), chroma, source,
        source if target is None else target, requant, mean, std, normalize, fy, fx, *outputs,
    )


# --------------------------------------------------------------------------------------------
# geometric and quality operations on coefficients


_HFLIP_SIGN = np.array([1, -1] * 32, np.int16)  # (-1)^v for natural index u * 8 + v


@_jit
def _hflip(rows):
    out = np.empty_like(rows)
    bw = rows.shape[1]
    for r in range(rows.shape[0]):
        for j in range(bw):
            for z in range(64):
                out[r, j, z] = rows[r, bw - 1 - j, z] * _HFLIP_SIGN[z]
    return out


def hflip(coef: np.ndarray) -> np.ndarray:
    """``reference.hflip`` of contiguous ``[B, bh, bw, 8, 8]`` blocks."""
    nb, bh, bw = coef.shape[:3]
    return _hflip(coef.reshape(nb * bh, bw, 64)).reshape(coef.shape)


def crop(coef: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """``reference.crop``: a strided copy, which NumPy already does at memory speed."""
    return np.ascontiguousarray(coef[..., top : top + height, left : left + width, :, :])


@_jit
def _requantize(coef, table_from, table_to, half):
    out = np.empty(coef.shape, np.int16)
    for b in range(coef.shape[0]):
        tf = table_from[b if table_from.shape[0] > 1 else 0]
        tt = table_to[b if table_to.shape[0] > 1 else 0]
        hf = half[b if half.shape[0] > 1 else 0]
        for r in range(coef.shape[1]):
            for z in range(64):
                value = np.float64(coef[b, r, z]) * tf[z]
                magnitude = np.floor((abs(value) + hf[z]) / tt[z])
                magnitude = min(magnitude, 32768.0)
                result = magnitude if value >= 0 else -magnitude
                out[b, r, z] = np.int16(min(result, 32767.0))
    return out


def requantize(coef: np.ndarray, table_from: np.ndarray, table_to: np.ndarray) -> np.ndarray:
    """``reference.requantize`` of ``[B, bh, bw, 64]`` with int64 ``[T, 64]`` tables.

    In float64: ``c * table_from`` and ``|value| + table_to // 2`` are integers below 2**32,
    exact in a double, and the floor of their correctly rounded quotient equals the integer
    quotient (the true quotient is at least ``1 / table_to`` below the next integer, far more
    than the rounding error), so this is the reference's integer arithmetic, vectorisable.
    """
    nb, bh, bw = coef.shape[:3]
    result = _requantize(
        coef.reshape(nb, bh * bw, 64),
        table_from.astype(np.float64),
        table_to.astype(np.float64),
        (table_to // 2).astype(np.float64),
    )
    return result.reshape(nb, bh, bw, 64)


# --------------------------------------------------------------------------------------------
# 8x8 DCT


@_jit
def _idct_block(src, scale, tmp, dst):
    """``dst = D^T (src * scale) D / 8`` for one 8x8 block in float64, ``D`` being
    ``reference.dct_matrix_scaled()`` (a compile-time constant here). Separable, two passes;
    each output is a sum over ascending index, the order the CUDA kernel uses too."""
    d = _DCT
    for u in range(8):
        c0 = src[u, 0] * scale[u, 0]
        c1 = src[u, 1] * scale[u, 1]
        c2 = src[u, 2] * scale[u, 2]
        c3 = src[u, 3] * scale[u, 3]
        c4 = src[u, 4] * scale[u, 4]
        c5 = src[u, 5] * scale[u, 5]
        c6 = src[u, 6] * scale[u, 6]
        c7 = src[u, 7] * scale[u, 7]
        for x in range(8):
            tmp[u, x] = (
                c0 * d[0, x] + c1 * d[1, x] + c2 * d[2, x] + c3 * d[3, x]
                + c4 * d[4, x] + c5 * d[5, x] + c6 * d[6, x] + c7 * d[7, x]
            )
    for x in range(8):
        t0, t1, t2, t3 = tmp[0, x], tmp[1, x], tmp[2, x], tmp[3, x]
        t4, t5, t6, t7 = tmp[4, x], tmp[5, x], tmp[6, x], tmp[7, x]
        for y in range(8):
            dst[y, x] = (
                d[0, y] * t0 + d[1, y] * t1 + d[2, y] * t2 + d[3, y] * t3
                + d[4, y] * t4 + d[5, y] * t5 + d[6, y] * t6 + d[7, y] * t7
            ) * 0.125


@_jit
def _fdct_block(src, offset, tmp, dst):
    """``dst = D (src + offset) D^T / 8`` for one 8x8 block in float64 (see ``_idct_block``)."""
    d = _DCT
    for y in range(8):
        c0 = src[y, 0] + offset
        c1 = src[y, 1] + offset
        c2 = src[y, 2] + offset
        c3 = src[y, 3] + offset
        c4 = src[y, 4] + offset
        c5 = src[y, 5] + offset
        c6 = src[y, 6] + offset
        c7 = src[y, 7] + offset
        for v in range(8):
            tmp[y, v] = (
                c0 * d[v, 0] + c1 * d[v, 1] + c2 * d[v, 2] + c3 * d[v, 3]
                + c4 * d[v, 4] + c5 * d[v, 5] + c6 * d[v, 6] + c7 * d[v, 7]
            )
    for v in range(8):
        t0, t1, t2, t3 = tmp[0, v], tmp[1, v], tmp[2, v], tmp[3, v]
        t4, t5, t6, t7 = tmp[4, v], tmp[5, v], tmp[6, v], tmp[7, v]
        for u in range(8):
            dst[u, v] = (
                d[u, 0] * t0 + d[u, 1] * t1 + d[u, 2] * t2 + d[u, 3] * t3
                + d[u, 4] * t4 + d[u, 5] * t5 + d[u, 6] * t6 + d[u, 7] * t7
            ) * 0.125


@_jit
def _dct_chunk(blocks, inverse, out, first):
    # Blocks are copied into a local buffer rather than passed as views: views would update a
    # shared reference count from every thread of the parallel kernel.
    ones = np.ones((8, 8), np.float64)
    src = np.empty((8, 8), np.float64)
    tmp = np.empty((8, 8), np.float64)
    work = np.empty((8, 8), np.float64)
    for b in range(first, min(first + _CHUNK, blocks.shape[0])):
        for y in range(8):
            for x in range(8):
                src[y, x] = blocks[b, y, x]
        if inverse:
            _idct_block(src, ones, tmp, work)
        else:
            _fdct_block(src, 0.0, tmp, work)
        for y in range(8):
            for x in range(8):
                out[b, y, x] = work[y, x]


@_Threaded
def _dct(blocks, inverse, out):
    for c in prange((blocks.shape[0] + _CHUNK - 1) // _CHUNK):
        _dct_chunk(blocks, inverse, out, c * _CHUNK)


def idct_8x8(blocks: np.ndarray) -> np.ndarray:
    """``reference.idct_8x8`` of float32 ``[N, 8, 8]``."""
    out = np.empty(blocks.shape, np.float32)
    _dct(blocks.shape[0], blocks, True, out)
    return out


def fdct_8x8(blocks: np.ndarray) -> np.ndarray:
    """``reference.fdct_8x8`` of float32 ``[N, 8, 8]``."""
    out = np.empty(blocks.shape, np.float32)
    _dct(blocks.shape[0], blocks, False, out)
    return out


@_jit
def _samples_row(coef, table, out, b, i):
    t = b if table.shape[0] > 1 else 0
    scale = np.empty((8, 8), np.float64)
    src = np.empty((8, 8), np.float64)
    tmp = np.empty((8, 8), np.float64)
    work = np.empty((8, 8), np.float64)
    for u in range(8):
        for v in range(8):
            scale[u, v] = table[t, u, v]
    for j in range(coef.shape[2]):
        for u in range(8):
            for v in range(8):
                src[u, v] = coef[b, i, j, u, v]
        _idct_block(src, scale, tmp, work)
        for y in range(8):
            for x in range(8):
                p = np.floor(work[y, x] + 128.5)
                out[b, i * 8 + y, j * 8 + x] = np.uint8(min(max(p, 0.0), 255.0))


@_Threaded
def _samples(coef, table, out):
    bh = coef.shape[1]
    for r in prange(coef.shape[0] * bh):
        _samples_row(coef, table, out, r // bh, r % bh)


def samples_from_blocks(coef: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``reference.samples_from_blocks`` of ``[B, bh, bw, 8, 8]`` with int64 ``[T, 8, 8]``."""
    nb, bh, bw = coef.shape[:3]
    out = np.empty((nb, bh * 8, bw * 8), np.uint8)
    _samples(nb * bh * bw, coef, table, out)
    return out


@_jit
def _blocks_row(plane, table, out, b, i):
    t = b if table.shape[0] > 1 else 0
    src = np.empty((8, 8), np.float64)
    tmp = np.empty((8, 8), np.float64)
    work = np.empty((8, 8), np.float64)
    for j in range(out.shape[2]):
        for y in range(8):
            for x in range(8):
                src[y, x] = plane[b, i * 8 + y, j * 8 + x]
        _fdct_block(src, -128.0, tmp, work)
        for u in range(8):
            for v in range(8):
                q = np.floor(abs(work[u, v]) / table[t, u, v] + 0.5)
                q = min(q, 32767.0) if work[u, v] >= 0 else -min(q, 32768.0)
                out[b, i, j, u, v] = np.int16(q)


@_Threaded
def _blocks(plane, table, out):
    bh = out.shape[1]
    for r in prange(out.shape[0] * bh):
        _blocks_row(plane, table, out, r // bh, r % bh)


def blocks_from_samples(plane: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``reference.blocks_from_samples`` of uint8 ``[B, 8 bh, 8 bw]`` with int64 ``[T, 8, 8]``."""
    nb, h, w = plane.shape
    out = np.empty((nb, h // 8, w // 8, 8, 8), np.int16)
    _blocks(nb * (h // 8) * (w // 8), plane, table, out)
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
    # Row by row: ``sums`` holds the vertical 3:1 column sums (or the samples themselves for
    # h2v1) with one replicated entry at each end, ``row`` the full-width filtered output.
    sums = np.empty(win + 2, np.int32)
    row = np.empty(2 * win, np.int32)
    for y in range(height):
        i = y // fy
        if fy == 2:
            # nearest input row, and the next nearest (above for even, below for odd rows)
            other = max(i - 1, 0) if y % 2 == 0 else min(i + 1, hin - 1)
            for j in range(win):
                sums[j + 1] = 3 * np.int32(plane[i, j]) + np.int32(plane[other, j])
        else:
            for j in range(win):
                sums[j + 1] = np.int32(plane[i, j])
        sums[0] = sums[1]
        sums[win + 1] = sums[win]
        if fx == 1:
            # h1v2: vertical 3:1 with biases +1 (upper output row) / +2 (lower)
            bias = 1 + y % 2
            for x in range(width):
                out[y, x] = np.uint8((sums[x + 1] + bias) >> 2)
            continue
        if fy == 1:
            # h2v1: horizontal 3:1 with biases +1 (left output) / +2 (right)
            for j in range(win):
                row[2 * j] = (3 * sums[j + 1] + sums[j] + 1) >> 2
                row[2 * j + 1] = (3 * sums[j + 1] + sums[j + 2] + 2) >> 2
        else:
            # h2v2: 3:1 across the column sums, biases +8 / +7
            for j in range(win):
                row[2 * j] = (3 * sums[j + 1] + sums[j] + 8) >> 4
                row[2 * j + 1] = (3 * sums[j + 1] + sums[j + 2] + 7) >> 4
        for x in range(width):
            out[y, x] = np.uint8(row[x])
    return out


def upsample_plane(plane: np.ndarray, fy: int, fx: int, height: int, width: int, fancy: bool) -> np.ndarray:
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


def ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """``reference.ycbcr_to_rgb`` of uint8 ``[B, H, W]`` planes."""
    return _ycbcr_to_rgb(y, cb, cr, *_YCC_TO_RGB)


@_jit
def _rgb_to_ycbcr(rgb):
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


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """``reference.rgb_to_ycbcr`` of uint8 ``[B, H, W, 3]``, giving ``[B, 3, H, W]``."""
    return _rgb_to_ycbcr(rgb)
