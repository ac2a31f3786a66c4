"""The public kernel functions: check the arguments, then run on the array's backend.

Each function states its operation, checks its arguments with ``checks.py`` (``ValueError``
naming the bad argument) and hands them to ``dispatch.call``, which runs the Numba CPU or CUDA
kernels according to the type of the first array and returns that type. ``cdomain.kernels``
re-exports these functions; ``reference.py`` holds the plain NumPy definition of each.
"""

from __future__ import annotations

from . import checks
from .dispatch import Array, call
from .dispatch import kind as call_kind

__all__ = [
    "dequantize_select",
    "hflip",
    "crop",
    "requantize",
    "idct_8x8",
    "fdct_8x8",
    "upsample_plane",
    "ycbcr_to_rgb",
    "rgb_to_ycbcr",
    "samples_from_blocks",
    "blocks_from_samples",
    "pack_region",
    "dequantize_batch",
]


def dequantize_select(
    coefficients: Array,
    quant_table: Array,
    n: int,
    *,
    upsample: tuple[int, int] = (1, 1),
    mean: Array | None = None,
    std: Array | None = None,
    out: Array | None = None,
) -> Array:
    """Dequantize, keep the ``n`` lowest zigzag frequencies, and lay blocks out as channels.

    This is the step from JPEG coefficients to network input: int16 ``[..., bh, bw, 8, 8]``
    becomes float32 ``[..., n, bh * fy, bw * fx]``, channel ``k`` holding coefficient
    ``ZIGZAG[k]`` of every block times its quantization table entry (frequency band selection,
    dos Santos et al. ICIP 2020). ``upsample=(fy, fx)`` repeats each block position to put a
    subsampled chroma component on the luma grid ((2, 2) for 4:2:0). With ``mean``/``std``
    (float32 ``[n]``; either may be omitted) the output is ``(value - mean[k]) / std[k]``.
    ``quant_table`` is ``[8, 8]`` or one table per image ``[..., 8, 8]``. ``out`` may be a
    preallocated float32 array or tensor of the output shape, for instance a channel slice of a
    merged ``[3n, H, W]`` tensor; it is filled and returned.
    """
    shape = checks.blocks("coefficients", coefficients)
    lead, (bh, bw) = shape[:-4], shape[-4:-2]
    table = checks.quant_table("quant_table", quant_table, lead)
    n = checks.zigzag_count(n)
    fy, fx = checks.factor("upsample", upsample)
    mean_, std_, normalize = checks.normalisation(mean, std, n)
    if out is not None:
        checks.output(out, (*lead, n, bh * fy, bw * fx), coefficients)
    result = call("dequantize_select", coefficients, table, n, fy, fx, mean_, std_, normalize, out)
    return result if out is None else out


def hflip(coefficients: Array) -> Array:
    """Horizontal flip of block-aligned images in the DCT domain (a new array).

    Reverses the block-column axis and negates the coefficients with odd horizontal frequency
    (the last axis), which equals flipping the decoded pixels of a block-aligned image. Used as
    a flip augmentation without decoding; flipping twice is the identity.
    """
    checks.blocks("coefficients", coefficients)
    return call("hflip", coefficients)


def crop(coefficients: Array, top: int, left: int, height: int, width: int) -> Array:
    """Blocks ``[top:top + height, left:left + width]`` (block units) as a new contiguous array.

    A block-aligned crop in the DCT domain, exact because blocks are coded independently (DC
    prediction is undone by the time coefficients reach here). Raises ValueError unless the
    region lies inside the block grid.
    """
    shape = checks.blocks("coefficients", coefficients, dtype=None)
    return call("crop", coefficients, *checks.region(shape, top, left, height, width))


def requantize(coefficients: Array, table_from: Array, table_to: Array) -> Array:
    """Change the quantization of coefficients from ``table_from`` to ``table_to`` (int16).

    ``value = c * table_from`` exactly, then libjpeg's quantizer rounding (jcdctmgr.c): half away
    from zero, ``sign(value) * ((|value| + table_to // 2) // table_to)``, clamped to int16. It
    approximates decoding and re-encoding at another quality without pixel rounding or
    clipping. Tables are ``[8, 8]`` or one per image ``[..., 8, 8]``.
    """
    lead = checks.blocks("coefficients", coefficients)[:-4]
    source = checks.quant_table("table_from", table_from, lead)
    target = checks.quant_table("table_to", table_to, lead)
    return call("requantize", coefficients, source, target)


def idct_8x8(blocks: Array) -> Array:
    """Orthonormal 2-D inverse DCT of float32 ``[..., 8, 8]`` blocks (ITU-T T.81 A.3.3).

    ``samples - 128 = idct_8x8(coefficients * quant_table)``. Computed in float64, returned as
    float32.
    """
    checks.dct_blocks("idct_8x8", blocks)
    return call("dct", blocks, True)


def fdct_8x8(blocks: Array) -> Array:
    """Orthonormal 2-D forward DCT of float32 ``[..., 8, 8]`` blocks (ITU-T T.81 A.3.3).

    The inverse of :func:`idct_8x8`: the DC coefficient of a constant block of value ``a`` is
    ``8 a``.
    """
    checks.dct_blocks("fdct_8x8", blocks)
    return call("dct", blocks, False)


def samples_from_blocks(coefficients: Array, quant_table: Array) -> Array:
    """Decode quantized blocks ``[..., bh, bw, 8, 8]`` to a uint8 plane ``[..., bh * 8, bw * 8]``.

    Dequantize, inverse DCT, add 128, round half up and clamp to 0..255 as libjpeg does after its
    IDCT; blocks are laid out in raster order. This decodes one component without jpeglib (it
    differs from libjpeg's integer IDCT by at most about one grey level on a few samples).
    """
    lead = checks.blocks("coefficients", coefficients)[:-4]
    return call("samples_from_blocks", coefficients, checks.quant_table("quant_table", quant_table, lead))


def blocks_from_samples(plane: Array, quant_table: Array) -> Array:
    """Encode a uint8 plane ``[..., H, W]`` to quantized int16 blocks ``[..., ceil(H/8), ceil(W/8), 8, 8]``.

    The inverse of :func:`samples_from_blocks`: subtract 128, forward DCT, quantize with libjpeg's
    rounding (half away from zero). A plane that is not whole blocks is first padded by
    replicating its last row and column, as libjpeg's encoder pads (jcprepct.c).
    """
    lead = checks.plane("plane", plane)[:-2]
    return call("blocks_from_samples", plane, checks.quant_table("quant_table", quant_table, lead))


def upsample_plane(
    plane: Array, factor: tuple[int, int], out_shape: tuple[int, int], method: str = "fancy"
) -> Array:
    """Upsample a uint8 chroma plane ``[h, w]`` by ``factor = (fy, fx)`` to uint8 ``out_shape``.

    ``out_shape = (H, W)`` is the size of the image (the luma plane); ``plane`` may be the whole
    block-padded component, of which only the first ``ceil(H / fy)`` rows and ``ceil(W / fx)``
    columns are used: libjpeg's ``downsampled_height`` / ``downsampled_width``. Passing the true
    image size makes the edges match libjpeg exactly (its filter replicates the last real
    sample, not the block padding); passing a block-padded ``out_shape`` also works but then
    treats padding as image content. The caller crops nothing afterwards in the first case.

    ``method="fancy"`` is libjpeg-turbo's jdsample.c triangle filter, bit-exact:
    ``h2v1_fancy_upsample`` for (1, 2), ``h2v2_fancy_upsample`` for (2, 2) and
    ``h1v2_fancy_upsample`` (libjpeg-turbo >= 2.1) for (2, 1), including their alternating
    rounding biases and edge replication; like libjpeg it falls back to pixel repetition for a
    horizontal factor 2 when the component is at most 2 samples wide. ``"nearest"`` repeats
    samples. Factor (1, 1) crops to ``out_shape``.
    """
    fy, fx = checks.factor("factor", factor, allowed=(1, 2))
    height, width = checks.upsampling(plane, (fy, fx), out_shape, method)
    return call("upsample_plane", plane, fy, fx, height, width, method == "fancy")


def ycbcr_to_rgb(y: Array, cb: Array, cr: Array) -> Array:
    """JFIF YCbCr planes (uint8 ``[..., H, W]``, all full size) to RGB uint8 ``[..., H, W, 3]``.

    Bit-exact with libjpeg's jdcolor.c (16-bit fixed point, its rounding, clamped to 0..255):
    ``R = Y + 1.402 (Cr - 128)``, ``G = Y - 0.34414 (Cb - 128) - 0.71414 (Cr - 128)``,
    ``B = Y + 1.772 (Cb - 128)``.
    """
    checks.colour_planes(y, cb, cr)
    return call("ycbcr_to_rgb", y, cb, cr)


def rgb_to_ycbcr(rgb: Array) -> Array:
    """RGB uint8 ``[..., H, W, 3]`` to planar JFIF YCbCr uint8 ``[..., 3, H, W]``.

    Bit-exact with libjpeg's jccolor.c, so the planes are what a libjpeg encoder would
    transform; uint8 (not float) for that reason. Planar because planes are what
    :func:`blocks_from_samples` and :func:`upsample_plane` take.
    """
    checks.rgb(rgb)
    return call("rgb_to_ycbcr", rgb)


def pack_region(
    coefficients: Array, top: int, left: int, height: int, width: int, flip: bool, n: int
) -> Array:
    """Crop, optionally mirror, and keep the ``n`` lowest zigzag frequencies of one component.

    int16 ``[bh, bw, 8, 8]`` becomes int16 ``[n, height, width]`` (block units; plane ``k``
    holds coefficient ``ZIGZAG[k]``, the channel order of the network input): :func:`crop`, then :func:`hflip` when ``flip``, then the frequency
    selection of :func:`dequantize_select`, in one pass. This is the per-file work of the
    batch path: workers pack, :func:`dequantize_batch` does the rest once per batch. CPU only
    (it runs where the file is decoded).
    """
    shape = checks.blocks("coefficients", coefficients)
    if len(shape) != 4:
        raise ValueError(f"coefficients must be one component [bh, bw, 8, 8], got {list(shape)}")
    region = checks.region(shape, top, left, height, width)
    n = checks.zigzag_count(n)
    if call_kind(coefficients) == "cuda":
        raise ValueError("pack_region runs on the host; coefficients must be a NumPy array or CPU tensor")
    return call("pack_region", coefficients, *region, bool(flip), n)


def dequantize_batch(
    luma: Array,
    chroma: Array,
    tables: Array,
    *,
    targets: Array | None = None,
    upsample: tuple[int, int] = (1, 1),
    mean: Array | None = None,
    std: Array | None = None,
    out_luma: Array | None = None,
    out_chroma: Array | None = None,
) -> tuple[Array, Array]:
    """Dequantize a whole batch of packed samples (:func:`pack_region`) in one kernel launch.

    ``luma`` int16 ``[B, n, bh, bw]`` and ``chroma`` int16 ``[B, 2, n, ch, cw]`` (Cb, Cr) hold
    the ``n`` lowest zigzag frequencies, one plane each; ``tables`` ``[B, 3, 8, 8]`` (natural order) are each
    image's Y, Cb, Cr quantization tables. With ``targets`` (``[B, 3, 8, 8]``) every
    coefficient is first requantized to the target table as :func:`requantize` does (a JPEG
    quality augmentation moved onto the batch) and dequantized with it. Returns float32 luma
    ``[B, n, bh, bw]`` and chroma ``[B, 2n, ch * fy, cw * fx]`` (chroma blocks repeated
    ``upsample = (fy, fx)`` times), normalised by ``mean``/``std`` ``[3n]`` when given: the
    values :func:`dequantize_select` gives per image and component. ``out_luma``/``out_chroma``
    may be preallocated float32 outputs, for instance the two channel slices
    ``out[:, :n]``, ``out[:, n:]`` of one merged ``[B, 3n, bh, bw]`` tensor.
    """
    shape = checks.packed("luma", luma, 4)
    batch, n, bh, bw = shape
    chroma_shape = checks.packed("chroma", chroma, 5)
    if chroma_shape[0] != batch or chroma_shape[1] != 2 or chroma_shape[2] != n:
        raise ValueError(f"chroma must have shape [{batch}, 2, {n}, ch, cw] like luma, got {list(chroma_shape)}")
    n = checks.zigzag_count(n)
    fy, fx = checks.factor("upsample", upsample)
    checks.batch_tables("tables", tables, batch)
    if targets is not None:
        checks.batch_tables("targets", targets, batch)
    mean_, std_, normalize = checks.normalisation(mean, std, 3 * n)
    ch, cw = chroma_shape[3], chroma_shape[4]
    if out_luma is not None:
        checks.output(out_luma, (batch, n, bh, bw), luma)
    if out_chroma is not None:
        checks.output(out_chroma, (batch, 2 * n, ch * fy, cw * fx), luma)
    result = call("dequantize_batch", luma, chroma, tables, targets, n, fy, fx, mean_, std_, normalize,
                  out_luma, out_chroma)
    return (result[0] if out_luma is None else out_luma, result[1] if out_chroma is None else out_chroma)
