"""Plain NumPy definitions of every kernel: the readable specification and the test oracle.

Each function here states an operation as directly as NumPy allows, with no attention to speed.
The Numba CPU (``cpu.py``) and CUDA (``cuda.py``) kernels must agree with these, and the tests
check that they do. Arguments are assumed valid: the public functions in ``cdomain.kernels``
validate them before calling any backend.

Conventions shared by all kernels:

* Coefficient blocks are ``[..., bh, bw, 8, 8]``: ``bh x bw`` blocks of 8x8 DCT coefficients,
  coefficient ``[u, v]`` in natural (row-major) order with ``u`` the vertical and ``v`` the
  horizontal frequency, as libjpeg and jpeglib store them.
* Quantization tables are ``[8, 8]`` in natural order, or ``[..., 8, 8]`` with one table per
  leading index of the coefficients.
* The DCT is the one of ITU-T T.81 A.3.3: orthonormal 2-D DCT-II (forward) and DCT-III
  (inverse) on samples shifted by -128.
* Where libjpeg rounds in a particular way, the kernels round the same way; each function names
  the libjpeg source it follows.
"""

from __future__ import annotations

import numpy as np

from cdomain.jpeg.tables import ZIGZAG

#: Fixed-point precision of libjpeg's colour conversion tables (jdcolor.c / jccolor.c).
SCALEBITS = 16
ONE_HALF = 1 << (SCALEBITS - 1)


def fix(x: float) -> int:
    """libjpeg's ``FIX(x)``: ``x`` in fixed point with ``SCALEBITS`` fractional bits, rounded."""
    return int(x * (1 << SCALEBITS) + 0.5)


def dct_matrix() -> np.ndarray:
    """T.81 A.3.3 DCT basis as a float64 ``[8, 8]`` matrix ``D[k, x]``.

    ``D[k, x] = C(k) / 2 * cos((2x + 1) k pi / 16)`` with ``C(0) = 1/sqrt(2)`` and ``C(k) = 1``
    otherwise. ``D`` is orthogonal, so the forward 2-D DCT of a block ``f`` is ``D f D^T`` and
    the inverse is ``D^T F D``.
    """
    k = np.arange(8)[:, None]
    x = np.arange(8)[None, :]
    matrix = np.cos((2 * x + 1) * k * np.pi / 16) / 2
    matrix[0] /= np.sqrt(2)
    return matrix


def dct_matrix_scaled() -> np.ndarray:
    """``dct_matrix() * sqrt(8)``, computed so that its first row is exactly 1.

    The kernels compute ``D^T F D`` as ``E^T F E / 8`` with this ``E``: in floating point the
    DC term then is exactly ``F[0, 0] / 8``, so a flat block whose value is ``k + 0.5`` rounds
    up like libjpeg's integer IDCT instead of landing a hair below the half.
    """
    k = np.arange(8)[:, None]
    x = np.arange(8)[None, :]
    matrix = np.sqrt(2.0) * np.cos((2 * x + 1) * k * np.pi / 16)
    matrix[0] = 1.0
    return matrix


def _table_values(quant_table: np.ndarray) -> np.ndarray:
    """A table as int64, with axes added so it broadcasts against ``[..., bh, bw, 8, 8]``."""
    table = np.asarray(quant_table).astype(np.int64)
    return table[..., None, None, :, :]


def dequantize_select(
    coefficients: np.ndarray,
    quant_table: np.ndarray,
    n: int,
    upsample: tuple[int, int] = (1, 1),
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
) -> np.ndarray:
    """Dequantize, keep the ``n`` lowest zigzag frequencies and lay them out as channels.

    Channel ``k`` of the float32 result ``[..., n, bh * fy, bw * fx]`` is coefficient
    ``ZIGZAG[k]`` of every block times its table entry, each block position repeated ``fy x fx``
    times (nearest-neighbour), then optionally ``(value - mean[k]) / std[k]`` in float32. This is
    frequency band selection (FBS, dos Santos et al. ICIP 2020) fused with the block-to-channel
    layout the networks take (Gueguen et al. NeurIPS 2018).
    """
    fy, fx = upsample
    zz = ZIGZAG[:n]
    flat = coefficients.reshape(*coefficients.shape[:-2], 64).astype(np.int64)
    table = np.asarray(quant_table).astype(np.int64)
    table = table.reshape(*table.shape[:-2], 64)[..., None, None, :]
    # The integer product is exact; the float32 conversion is the only rounding.
    values = (flat[..., zz] * table[..., zz]).astype(np.float32)  # [..., bh, bw, n]
    values = np.moveaxis(values, -1, -3)  # [..., n, bh, bw]
    if mean is not None:
        mean = np.asarray(mean, dtype=np.float32)[:, None, None]
        std = np.asarray(std, dtype=np.float32)[:, None, None]
        values = (values - mean) / std
    values = np.repeat(np.repeat(values, fy, axis=-2), fx, axis=-1)
    return np.ascontiguousarray(values, dtype=np.float32)


def hflip(coefficients: np.ndarray) -> np.ndarray:
    """Horizontal flip of a block-aligned image, done on its DCT coefficients.

    Mirroring the samples ``x -> 7 - x`` inside a block multiplies the basis function of
    horizontal frequency ``v`` by ``(-1)^v``; mirroring the image also reverses the block
    columns. So: reverse the ``bw`` axis and negate every coefficient with odd ``v``.
    """
    sign = np.where(np.arange(8) % 2 == 1, -1, 1).astype(coefficients.dtype)
    return np.ascontiguousarray(coefficients[..., ::-1, :, :] * sign)


def crop(coefficients: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Blocks ``[top:top + height, left:left + width]`` of every image, as a new array."""
    return np.ascontiguousarray(coefficients[..., top : top + height, left : left + width, :, :])


def requantize(coefficients: np.ndarray, table_from: np.ndarray, table_to: np.ndarray) -> np.ndarray:
    """Re-quantize coefficients from ``table_from`` to ``table_to`` (a quality change).

    ``value = c * table_from`` is exact; the new coefficient is
    ``sign(value) * ((|value| + table_to // 2) // table_to)``, libjpeg's quantizer rounding
    (jcdctmgr.c, ``quantize``: half away from zero), clamped to int16.
    """
    value = coefficients.astype(np.int64) * _table_values(table_from)
    divisor = _table_values(table_to)
    magnitude = (np.abs(value) + divisor // 2) // divisor
    result = np.sign(value) * magnitude
    return np.clip(result, -32768, 32767).astype(np.int16)


def idct_8x8(blocks: np.ndarray) -> np.ndarray:
    """Orthonormal 2-D inverse DCT (T.81 A.3.3 IDCT) of float32 ``[..., 8, 8]`` blocks.

    ``f[y, x] = 1/4 sum_u sum_v C(u) C(v) F[u, v] cos((2y+1) u pi/16) cos((2x+1) v pi/16)``,
    computed in float64 and returned as float32.
    """
    e = dct_matrix_scaled()
    return (e.T @ np.asarray(blocks, dtype=np.float64) @ e / 8).astype(np.float32)


def fdct_8x8(blocks: np.ndarray) -> np.ndarray:
    """Orthonormal 2-D forward DCT (T.81 A.3.3 FDCT) of float32 ``[..., 8, 8]`` blocks."""
    e = dct_matrix_scaled()
    return (e @ np.asarray(blocks, dtype=np.float64) @ e.T / 8).astype(np.float32)


def samples_from_blocks(coefficients: np.ndarray, quant_table: np.ndarray) -> np.ndarray:
    """Decode coefficient blocks to a uint8 sample plane ``[..., bh * 8, bw * 8]``.

    Dequantize, inverse DCT, add 128, round half up and clamp to 0..255, as libjpeg's IDCT does
    (its output goes through ``range_limit``). The float IDCT differs from libjpeg's integer
    ``jidctint.c`` by at most one grey level on a few samples.
    """
    values = coefficients.astype(np.float64) * _table_values(quant_table)
    e = dct_matrix_scaled()
    pixels = e.T @ values @ e / 8 + 128.0
    pixels = np.clip(np.floor(pixels + 0.5), 0, 255).astype(np.uint8)
    *lead, bh, bw, _, _ = pixels.shape
    pixels = np.swapaxes(pixels, -3, -2)  # [..., bh, 8, bw, 8]
    return np.ascontiguousarray(pixels.reshape(*lead, bh * 8, bw * 8))


def blocks_from_samples(plane: np.ndarray, quant_table: np.ndarray) -> np.ndarray:
    """Encode a uint8 sample plane ``[..., 8 * bh, 8 * bw]`` to quantized int16 blocks.

    Subtract 128, forward DCT, divide by the table and round half away from zero (libjpeg's
    quantizer), clamped to int16. The plane must already be whole blocks; the public function
    pads by edge replication first, as libjpeg's encoder does.
    """
    *lead, h, w = plane.shape
    blocks = plane.reshape(*lead, h // 8, 8, w // 8, 8)
    blocks = np.swapaxes(blocks, -3, -2).astype(np.float64) - 128.0  # [..., bh, bw, 8, 8]
    e = dct_matrix_scaled()
    values = e @ blocks @ e.T / 8
    table = _table_values(quant_table).astype(np.float64)
    quantized = np.sign(values) * np.floor(np.abs(values) / table + 0.5)
    return np.clip(quantized, -32768, 32767).astype(np.int16)


def _shift(x: np.ndarray, axis: int, step: int) -> np.ndarray:
    """``x`` moved by one along ``axis`` with edge replication: ``step=-1`` gives each element
    its predecessor (the first keeps itself), ``step=+1`` its successor."""
    n = x.shape[axis]
    index = np.clip(np.arange(n) + step, 0, n - 1)
    return np.take(x, index, axis=axis)


def upsample_plane(
    plane: np.ndarray, factor: tuple[int, int], out_shape: tuple[int, int], method: str = "fancy"
) -> np.ndarray:
    """Upsample a uint8 component plane to ``out_shape`` like libjpeg-turbo's jdsample.c.

    Only the first ``ceil(H / fy)`` rows and ``ceil(W / fx)`` columns of ``plane`` are used:
    libjpeg's ``downsampled_height`` / ``downsampled_width`` of a component of an image of
    ``out_shape = (H, W)`` pixels. Samples past those (block padding) are ignored, and the
    triangle filter replicates the last used row and column at the edges, as libjpeg does.

    ``"fancy"`` is libjpeg's triangle filter: weights 3/4 and 1/4 per upsampled axis, integer
    arithmetic with the ordered-dither biases of ``h2v1_fancy_upsample`` (+1 / +2, shift 2),
    ``h2v2_fancy_upsample`` (+8 / +7, shift 4) and ``h1v2_fancy_upsample`` (+1 / +2, shift 2).
    As in libjpeg, factors with a horizontal 2 fall back to pixel repetition when the component
    is at most 2 samples wide. ``"nearest"`` repeats every sample ``fy x fx`` times.
    """
    fy, fx = factor
    height, width = out_shape
    hin, win = -(-height // fy), -(-width // fx)
    x = plane[:hin, :win].astype(np.int32)
    fancy = method == "fancy" and (fx == 1 or win > 2) and (fy, fx) != (1, 1)
    if not fancy:
        out = np.repeat(np.repeat(x, fy, axis=0), fx, axis=1)
    elif (fy, fx) == (1, 2):
        out = np.empty((hin, 2 * win), np.int32)
        out[:, 0::2] = (3 * x + _shift(x, 1, -1) + 1) >> 2
        out[:, 1::2] = (3 * x + _shift(x, 1, +1) + 2) >> 2
    elif (fy, fx) == (2, 1):
        out = np.empty((2 * hin, win), np.int32)
        out[0::2] = (3 * x + _shift(x, 0, -1) + 1) >> 2
        out[1::2] = (3 * x + _shift(x, 0, +1) + 2) >> 2
    else:  # (2, 2): vertical column sums first, then horizontal, both 3:1
        out = np.empty((2 * hin, 2 * win), np.int32)
        for row_offset, step in ((0, -1), (1, +1)):
            colsum = 3 * x + _shift(x, 0, step)
            out[row_offset::2, 0::2] = (3 * colsum + _shift(colsum, 1, -1) + 8) >> 4
            out[row_offset::2, 1::2] = (3 * colsum + _shift(colsum, 1, +1) + 7) >> 4
    return np.ascontiguousarray(out[:height, :width].astype(np.uint8))


def ycbcr_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """libjpeg's jdcolor.c ``build_ycc_rgb_table``: int64 lookup tables indexed by 0..255.

    Returns ``(cr_r, cb_b, cr_g, cb_g)``: ``cr_r`` and ``cb_b`` are the rounded red and blue
    offsets; ``cr_g`` and ``cb_g`` are the green contributions in 16-bit fixed point, ``cb_g``
    already holding the rounding half.
    """
    x = np.arange(256, dtype=np.int64) - 128
    cr_r = (fix(1.40200) * x + ONE_HALF) >> SCALEBITS
    cb_b = (fix(1.77200) * x + ONE_HALF) >> SCALEBITS
    cr_g = -fix(0.71414) * x
    cb_g = -fix(0.34414) * x + ONE_HALF
    return cr_r, cb_b, cr_g, cb_g


def ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """JFIF YCbCr to RGB, exactly as libjpeg's jdcolor.c ``ycc_rgb_convert``.

    ``R = Y + 1.402 (Cr - 128)``, ``G = Y - 0.34414 (Cb - 128) - 0.71414 (Cr - 128)``,
    ``B = Y + 1.772 (Cb - 128)`` in 16-bit fixed point with libjpeg's rounding, clamped to
    0..255. Planes ``[..., H, W]`` give ``[..., H, W, 3]``.
    """
    cr_r, cb_b, cr_g, cb_g = ycbcr_tables()
    y = y.astype(np.int64)
    red = y + cr_r[cr]
    green = y + ((cb_g[cb] + cr_g[cr]) >> SCALEBITS)
    blue = y + cb_b[cb]
    return np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """RGB ``[..., H, W, 3]`` to planar uint8 YCbCr ``[..., 3, H, W]``, as jccolor.c ``rgb_ycc_convert``.

    ``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cb = -0.16874 R - 0.33126 G + 0.5 B + 128``,
    ``Cr = 0.5 R - 0.41869 G - 0.08131 B + 128`` in 16-bit fixed point; ``Y`` rounds half up,
    ``Cb`` and ``Cr`` with libjpeg's "half minus epsilon" so no clamping is needed. The result
    is what a libjpeg encoder feeds to its forward DCT.
    """
    r, g, b = (np.moveaxis(rgb, -1, 0)[i].astype(np.int64) for i in range(3))
    offset = (128 << SCALEBITS) + ONE_HALF - 1
    y = (fix(0.29900) * r + fix(0.58700) * g + fix(0.11400) * b + ONE_HALF) >> SCALEBITS
    cb = (-fix(0.16874) * r - fix(0.33126) * g + fix(0.50000) * b + offset) >> SCALEBITS
    cr = (fix(0.50000) * r - fix(0.41869) * g - fix(0.08131) * b + offset) >> SCALEBITS
    return np.stack([y, cb, cr], axis=-3).astype(np.uint8)


def pack_region(
    coefficients: np.ndarray, top: int, left: int, height: int, width: int, flip: bool, n: int
) -> np.ndarray:
    """Crop, optionally flip, and keep the ``n`` lowest zigzag frequencies of one component.

    ``coefficients`` ``[bh, bw, 8, 8]`` becomes int16 ``[n, height, width]``: plane ``k`` holds
    coefficient ``ZIGZAG[k]`` of the blocks ``[top:top + height, left:left + width]`` (mirrored
    left-right as :func:`hflip` does when ``flip``). This is all a data-loading worker does to a
    decoded file before the batch is dequantized on the model's device
    (:func:`dequantize_batch`); only the kept frequencies travel, as int16, already in the
    channel order of the network input.
    """
    region = crop(coefficients, top, left, height, width)
    if flip:
        region = hflip(region)
    planes = np.moveaxis(region.reshape(height, width, 64)[:, :, ZIGZAG[:n]], -1, 0)
    return np.ascontiguousarray(planes, dtype=np.int16)


def dequantize_batch(
    luma: np.ndarray,
    chroma: np.ndarray,
    tables: np.ndarray,
    targets: np.ndarray | None = None,
    upsample: tuple[int, int] = (1, 1),
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`dequantize_select` of a whole batch of packed samples (see :func:`pack_region`).

    ``luma`` int16 ``[B, n, bh, bw]`` and ``chroma`` int16 ``[B, 2, n, ch, cw]`` hold the ``n``
    lowest zigzag frequencies of Y and of Cb, Cr, one plane per frequency; ``tables`` ``[B, 3, 8, 8]`` their quantization
    tables (natural order). With ``targets`` (``[B, 3, 8, 8]``) the coefficients are first
    requantized to those tables (:func:`requantize`, a random-quality augmentation) and
    dequantized with them. Returns float32 luma ``[B, n, bh, bw]`` and chroma
    ``[B, 2n, ch * fy, cw * fx]`` (each chroma block repeated ``upsample = (fy, fx)`` times),
    normalised by ``mean``/``std`` ``[3n]`` (Y's n, Cb's n, Cr's n) when given.
    """
    batch, n = luma.shape[:2]
    zz = ZIGZAG[:n]
    source = np.asarray(tables).astype(np.int64).reshape(batch, 3, 64)[..., zz]
    target = None if targets is None else np.asarray(targets).astype(np.int64).reshape(batch, 3, 64)[..., zz]
    parts = []
    for index, coefficients in enumerate((luma, chroma[:, 0], chroma[:, 1])):
        values = coefficients.astype(np.int64)
        table = source[:, index, :, None, None]
        if target is not None:
            divisor = target[:, index, :, None, None]
            value = values * table
            values = np.clip(np.sign(value) * ((np.abs(value) + divisor // 2) // divisor), -32768, 32767)
            table = divisor
        plane = (values * table).astype(np.float32)  # [B, n, h, w]
        if mean is not None or std is not None:
            m = np.zeros(n, np.float32) if mean is None else np.asarray(mean, np.float32)[index * n : (index + 1) * n]
            s = np.ones(n, np.float32) if std is None else np.asarray(std, np.float32)[index * n : (index + 1) * n]
            plane = (plane - m[:, None, None]) / s[:, None, None]
        if index:
            plane = np.repeat(np.repeat(plane, upsample[0], axis=-2), upsample[1], axis=-1)
        parts.append(plane)
    return np.ascontiguousarray(parts[0], np.float32), np.ascontiguousarray(np.concatenate(parts[1:], axis=1), np.float32)
