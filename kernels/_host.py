"""The CPU side of the dispatch: NumPy arrays in, Numba CPU kernels (``cpu.py``), NumPy out.

``dispatch.call`` hands each function here validated NumPy arrays (zero-copy views of torch CPU
tensors) and returns their result, as torch when the input was a tensor. The functions bring
arrays into the form the kernels take: leading batch axes collapsed into one, inputs
contiguous, quantization tables int64 ``[T, 64]`` (``T`` = 1 or the batch size), planes padded
to whole blocks; then they give the result its caller's shape. ``_device.py`` does the same for
CUDA arrays, with the same function names and arguments.
"""

from __future__ import annotations

import math

import numpy as np

from cdomain.jpeg.tables import ZIGZAG

from . import cpu

_ZIGZAG = np.ascontiguousarray(ZIGZAG, dtype=np.int64)


def table_rows(table: np.ndarray) -> np.ndarray:
    """A table ``[8, 8]`` or ``[..., 8, 8]`` as contiguous int64 ``[T, 64]``, without a copy if
    it already is one. An empty batch gets one dummy table so that kernels index safely."""
    rows = np.ascontiguousarray(np.asarray(table, dtype=np.int64).reshape(-1, 64))
    if rows.shape[0] == 0:
        rows = np.ones((1, 64), np.int64)
    return rows


def _collapse(array: np.ndarray, lead_ndim: int) -> np.ndarray | None:
    """``array`` with its first ``lead_ndim`` axes merged into one, as a view; None if that
    needs a copy."""
    if lead_ndim == 1:
        return array
    if lead_ndim == 0:
        return array[None]
    merged = math.prod(array.shape[:lead_ndim])
    view = array.view()
    try:
        view.shape = (merged, *array.shape[lead_ndim:])
    except AttributeError:
        return None
    return view


def dequantize_select(
    coefficients: np.ndarray, table: np.ndarray, n: int, fy: int, fx: int,
    mean: np.ndarray, std: np.ndarray, normalize: bool, out: np.ndarray | None,
) -> np.ndarray:
    """``[..., bh, bw, 8, 8]`` -> float32 ``[..., n, bh * fy, bw * fx]``, into ``out`` if given."""
    lead, (bh, bw) = coefficients.shape[:-4], coefficients.shape[-4:-2]
    batch = math.prod(lead)
    coef = np.ascontiguousarray(coefficients).reshape(batch, bh, bw, 64)
    table = table_rows(table)
    zz = _ZIGZAG[:n]
    target = np.empty((*lead, n, bh * fy, bw * fx), np.float32) if out is None else out
    view = _collapse(target, len(lead))
    if view is not None:
        cpu.dequantize_select(coef, table, zz, fy, fx, mean, std, normalize, view)
    else:  # leading axes of `out` cannot merge without a copy: one image at a time
        for b, index in enumerate(np.ndindex(*lead)):
            t = table[b : b + 1] if table.shape[0] > 1 else table
            cpu.dequantize_select(coef[b : b + 1], t, zz, fy, fx, mean, std, normalize, target[index][None])
    return target


def hflip(coefficients: np.ndarray) -> np.ndarray:
    shape = coefficients.shape
    coef = np.ascontiguousarray(coefficients).reshape(-1, *shape[-4:])
    return cpu.hflip(coef).reshape(shape)


def crop(coefficients: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    return cpu.crop(coefficients, top, left, height, width)


def requantize(coefficients: np.ndarray, table_from: np.ndarray, table_to: np.ndarray) -> np.ndarray:
    shape = coefficients.shape
    coef = np.ascontiguousarray(coefficients).reshape(math.prod(shape[:-4]), *shape[-4:-2], 64)
    return cpu.requantize(coef, table_rows(table_from), table_rows(table_to)).reshape(shape)


def dct(blocks: np.ndarray, inverse: bool) -> np.ndarray:
    flat = np.ascontiguousarray(blocks).reshape(-1, 8, 8)
    result = cpu.idct_8x8(flat) if inverse else cpu.fdct_8x8(flat)
    return result.reshape(blocks.shape)


def samples_from_blocks(coefficients: np.ndarray, table: np.ndarray) -> np.ndarray:
    lead, (bh, bw) = coefficients.shape[:-4], coefficients.shape[-4:-2]
    coef = np.ascontiguousarray(coefficients).reshape(math.prod(lead), bh, bw, 8, 8)
    result = cpu.samples_from_blocks(coef, table_rows(table).reshape(-1, 8, 8))
    return result.reshape(*lead, bh * 8, bw * 8)


def blocks_from_samples(plane: np.ndarray, table: np.ndarray) -> np.ndarray:
    lead, (h, w) = plane.shape[:-2], plane.shape[-2:]
    hp, wp = -(-h // 8) * 8, -(-w // 8) * 8
    samples = plane.reshape(math.prod(lead), h, w)
    if (hp, wp) != (h, w):  # libjpeg's encoder padding: replicate the last row and column
        samples = np.pad(samples, ((0, 0), (0, hp - h), (0, wp - w)), mode="edge")
    samples = np.ascontiguousarray(samples)
    result = cpu.blocks_from_samples(samples, table_rows(table).reshape(-1, 8, 8))
    return result.reshape(*lead, hp // 8, wp // 8, 8, 8)


def upsample_plane(plane: np.ndarray, fy: int, fx: int, height: int, width: int, fancy: bool) -> np.ndarray:
    return cpu.upsample_plane(np.ascontiguousarray(plane), fy, fx, height, width, fancy)


def ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    shape = y.shape
    planes = [np.ascontiguousarray(p).reshape(-1, *shape[-2:]) for p in (y, cb, cr)]
    return cpu.ycbcr_to_rgb(*planes).reshape(*shape, 3)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    shape = rgb.shape
    flat = np.ascontiguousarray(rgb).reshape(-1, *shape[-3:])
    return cpu.rgb_to_ycbcr(flat).reshape(*shape[:-3], 3, *shape[-3:-1])


def pack_region(coefficients: np.ndarray, top: int, left: int, height: int, width: int, flip: bool,
                n: int) -> np.ndarray:
    return cpu.pack_region(np.ascontiguousarray(coefficients), top, left, height, width, flip, _ZIGZAG[:n])


def pack_colour(components: tuple[np.ndarray, np.ndarray, np.ndarray], box: tuple[int, int, int, int],
                ratio: tuple[int, int], flip: bool, n: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pack_region` of Y (``box`` in luma blocks: top, left, rows, cols) and of Cb, Cr
    (the box divided by the chroma ``ratio``) in one kernel call: what a batch-path worker does
    to each colour file, without three calls' worth of Python around it."""
    y, cb, cr = (np.ascontiguousarray(part) for part in components)
    return cpu.pack_colour(y, cb, cr, *box, *ratio, flip, _ZIGZAG[:n])


def zigzag_tables(tables: np.ndarray, n: int) -> np.ndarray:
    """``[B, 3, 8, 8]`` tables as contiguous int64 ``[B, 3, n]`` in zigzag order."""
    batch = tables.shape[0]
    return np.ascontiguousarray(np.asarray(tables, dtype=np.int64).reshape(batch, 3, 64)[..., _ZIGZAG[:n]])


def dequantize_batch(
    luma: np.ndarray, chroma: np.ndarray, tables: np.ndarray, targets: np.ndarray | None, n: int, fy: int, fx: int,
    mean: np.ndarray, std: np.ndarray, normalize: bool, out_luma: np.ndarray | None, out_chroma: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    batch, _, bh, bw = luma.shape
    ch, cw = chroma.shape[3:5]
    if out_luma is None:
        out_luma = np.empty((batch, n, bh, bw), np.float32)
    if out_chroma is None:
        out_chroma = np.empty((batch, 2 * n, ch * fy, cw * fx), np.float32)
    source = zigzag_tables(tables, n)
    target = None if targets is None else zigzag_tables(targets, n)
    cpu.dequantize_batch(np.ascontiguousarray(luma), np.ascontiguousarray(chroma), source, target, fy, fx, mean, std,
                         normalize, out_luma, out_chroma)
    return out_luma, out_chroma
