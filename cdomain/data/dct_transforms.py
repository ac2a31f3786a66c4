"""DCT-domain sample transforms: MCU-aligned crop and pad, horizontal flip, downscaling by 2
or 4, channel layout.

All work happens on quantized coefficients; nothing is decoded to pixels. Crops move in whole
MCUs (16 px for 4:2:0) so that chroma blocks stay aligned with the luma blocks they cover.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np

from cdomain import kernels
from cdomain.kernels import _host, cpu
from cdomain.jpeg.tables import ZIGZAG
from cdomain.jpeg.image import DCTImage

LAYOUTS = ("merged", "split")
SMALL_POLICIES = ("pad", "error")

_ZIGZAG = np.ascontiguousarray(ZIGZAG, dtype=np.int64)

#: Crop sizes are multiples of this many pixels so 4:2:0 chroma stays block-aligned.
CROP_MULTIPLE = 16


@dataclass(frozen=True)
class ChannelStats:
    """Per-channel mean and standard deviation of the 3n FBS channels (Y's n, Cb's n, Cr's n)."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", np.ascontiguousarray(self.mean, dtype=np.float32))
        object.__setattr__(self, "std", np.ascontiguousarray(np.maximum(self.std, 1e-6), dtype=np.float32))
        if self.mean.shape != self.std.shape or self.mean.ndim != 1 or self.mean.size % 3:
            raise ValueError("ChannelStats needs two 1-D arrays of equal length 3n")

    @property
    def fbs(self) -> int:
        return self.mean.size // 3

    def component(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of component ``index`` (0 Y, 1 Cb, 2 Cr)."""
        part = slice(index * self.fbs, (index + 1) * self.fbs)
        return self.mean[part], self.std[part]


def chroma_ratio(image: DCTImage) -> tuple[int, int]:
    """Luma blocks per chroma block ``(vertical, horizontal)``; (1, 1) for grayscale."""
    if image.num_components == 1:
        return 1, 1
    (vy, hy), (vc, hc) = image.sampling[0], image.sampling[1]
    return vy // vc, hy // hc


def aligned_blocks(image: DCTImage) -> tuple[int, int]:
    """Luma block rows/cols fully covered by whole chroma blocks (the usable, aligned region)."""
    ry, rx = chroma_ratio(image)
    rows, cols = image.y.shape[:2]
    if image.num_components > 1:
        rows = min(rows // ry, image.cb.shape[0]) * ry
        cols = min(cols // rx, image.cb.shape[1]) * rx
    return rows, cols


def crop_blocks(image: DCTImage, top: int, left: int, rows: int, cols: int) -> DCTImage:
    """Crop a luma-block region (offsets and sizes multiples of the chroma ratio) from every component."""
    ry, rx = chroma_ratio(image)
    if top % ry or left % rx or rows % ry or cols % rx:
        raise ValueError(f"crop {rows}x{cols}+{top}+{left} blocks is not aligned to the {ry}x{rx} chroma grid")
    # One region check for the file, then plain strided copies (what kernels.crop does after
    # its checks), instead of three checked kernel calls per sample.
    boxes = [(top, left, rows, cols)] + [(top // ry, left // rx, rows // ry, cols // rx)] * (image.num_components - 1)
    parts = []
    for coefficients, (t, l, h, w) in zip(image.coefficients, boxes):
        if t < 0 or l < 0 or t + h > coefficients.shape[0] or l + w > coefficients.shape[1]:
            kernels.crop(coefficients, t, l, h, w)  # raises the kernels' message for the bad region
        parts.append(np.ascontiguousarray(coefficients[t : t + h, l : l + w]))
    return replace(image, coefficients=tuple(parts), height=rows * 8, width=cols * 8)


@dataclass(frozen=True)
class Region:
    """Where a sample's pixels came from: the crop in source-image pixels, and the flip.

    ``top``/``left`` may be negative when a small image was padded. Targets that live in image
    coordinates (points, density maps) use this to follow the crop and the flip.
    """

    top: int
    left: int
    height: int
    width: int
    flipped: bool = False


def _pad_blocks(image: DCTImage, rows: int, cols: int) -> tuple[DCTImage, int, int]:
    """Centre ``image`` on a ``rows`` x ``cols`` block canvas of mid-grey (zero) blocks; also return
    the image's top/left offset in the canvas (blocks)."""
    ry, rx = chroma_ratio(image)
    have_rows, have_cols = aligned_blocks(image)
    image = crop_blocks(image, 0, 0, have_rows, have_cols)
    top = (rows - have_rows) // 2 // ry * ry
    left = (cols - have_cols) // 2 // rx * rx
    parts = []
    for index, coefficients in enumerate(image.coefficients):
        fy, fx = (1, 1) if index == 0 else (ry, rx)
        canvas = np.zeros((rows // fy, cols // fx, 8, 8), dtype=np.int16)
        h, w = coefficients.shape[:2]
        canvas[top // fy : top // fy + h, left // fx : left // fx + w] = coefficients
        parts.append(canvas)
    return replace(image, coefficients=tuple(parts), height=rows * 8, width=cols * 8), top, left


def hflip_image(image: DCTImage) -> DCTImage:
    """Mirror a block-aligned image left-right in the DCT domain."""
    return replace(image, coefficients=tuple(kernels.hflip(c) for c in image.coefficients))


def plan_region(
    image: DCTImage,
    crop: tuple[int, int] | None,
    rng: "np.random.Generator | SampleRandom | None",
    small: str = "pad",
) -> tuple[DCTImage, tuple[int, int, int, int], Region]:
    """Where :func:`locate_region` cuts, without cutting: the image (padded when smaller than
    the crop), the luma-block box ``(top, left, rows, cols)`` and the :class:`Region`."""
    rows, cols = aligned_blocks(image)
    if rows == 0 or cols == 0:
        raise ValueError(f"{image.source}: image of {image.width}x{image.height} px has no whole MCU")
    if crop is None:
        return image, (0, 0, rows, cols), Region(0, 0, rows * 8, cols * 8)
    want_rows, want_cols = crop[0] // 8, crop[1] // 8
    pad_top = pad_left = 0
    if rows < want_rows or cols < want_cols:
        if small == "error":
            raise ValueError(
                f"{image.source}: image of {image.width}x{image.height} px is smaller than the crop {crop[1]}x{crop[0]}"
            )
        image, pad_top, pad_left = _pad_blocks(image, max(rows, want_rows), max(cols, want_cols))
        rows, cols = max(rows, want_rows), max(cols, want_cols)
    ry, rx = chroma_ratio(image)
    slack_rows, slack_cols = (rows - want_rows) // ry, (cols - want_cols) // rx
    if rng is None:
        top, left = slack_rows // 2 * ry, slack_cols // 2 * rx
    else:
        top = int(rng.integers(0, slack_rows + 1)) * ry
        left = int(rng.integers(0, slack_cols + 1)) * rx
    region = Region((top - pad_top) * 8, (left - pad_left) * 8, want_rows * 8, want_cols * 8)
    return image, (top, left, want_rows, want_cols), region


def locate_region(
    image: DCTImage,
    crop: tuple[int, int] | None,
    rng: "np.random.Generator | SampleRandom | None",
    small: str = "pad",
) -> tuple[DCTImage, Region]:
    """Cut the training/eval region: a random (``rng`` given) or centre MCU-aligned crop.

    ``crop`` is ``(height, width)`` in pixels (multiples of :data:`CROP_MULTIPLE`), or None for
    the whole aligned image. Images smaller than the crop are padded with mid-grey blocks
    (``small="pad"``) or rejected (``small="error"``).
    """
    image, box, region = plan_region(image, crop, rng, small)
    return crop_blocks(image, *box), region


def check_layout(image: DCTImage, layout: str, rows: int, cols: int) -> tuple[int, int]:
    """``image``'s chroma ratio, once checked that ``layout`` can hold a ``rows x cols``-block
    region of it (the split layout needs 4:2:0 or grayscale, and even block counts)."""
    ry, rx = chroma_ratio(image)
    if layout == "split":
        if image.num_components > 1 and (ry, rx) != (2, 2):
            raise ValueError(
                f"{image.source}: the split layout needs 4:2:0 chroma, this image is {image.subsampling}; "
                "use layout='merged'"
            )
        if rows % 2 or cols % 2:
            raise ValueError(f"{image.source}: the split layout needs an even number of luma blocks")
    return ry, rx


def to_channels(
    image: DCTImage, fbs: int, layout: str = "merged", stats: ChannelStats | None = None
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Dequantize, keep the ``fbs`` lowest zigzag frequencies, and lay the blocks out as channels.

    ``"merged"``: float32 ``[3n, H/8, W/8]``, chroma repeated onto the luma grid.
    ``"split"``: ``(y [n, H/8, W/8], cbcr [2n, H/16, W/16])``; needs 4:2:0 (or grayscale).
    Grayscale images get zero (neutral) chroma. ``stats`` normalises each channel.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    rows, cols = image.y.shape[:2]
    ry, rx = check_layout(image, layout, rows, cols)
    if layout == "split":
        luma = np.empty((fbs, rows, cols), dtype=np.float32)
        chroma = np.empty((2 * fbs, rows // 2, cols // 2), dtype=np.float32)
        _fill(image, fbs, stats, luma, [chroma[:fbs], chroma[fbs:]], (1, 1))
        return luma, chroma
    out = np.empty((3 * fbs, rows, cols), dtype=np.float32)
    _fill(image, fbs, stats, out[:fbs], [out[fbs : 2 * fbs], out[2 * fbs :]], (ry, rx))
    return out


def _fill(
    image: DCTImage,
    fbs: int,
    stats: ChannelStats | None,
    luma_out: np.ndarray,
    chroma_outs: list[np.ndarray],
    upsample: tuple[int, int],
) -> None:
    # The file's tables are checked once here; the kernels are then called without the
    # per-call argument checks of the public kernel functions (the shapes come from the decoder
    # and the outputs are allocated above).
    tables = file_tables(image)
    for index, out in enumerate([luma_out, *chroma_outs]):
        mean, std = stats.component(index) if stats is not None else (None, None)
        if index and image.num_components == 1:
            out[...] = 0.0 if stats is None else (-mean / std)[:, None, None]
            continue
        fy, fx = (1, 1) if index == 0 else upsample
        normalise = stats is not None
        if not normalise:
            mean, std = _neutral(fbs)
        coefficients = np.ascontiguousarray(image.coefficients[index])
        rows, cols = coefficients.shape[:2]
        cpu.dequantize_select(coefficients.reshape(1, rows, cols, 64), tables[index], _ZIGZAG[:fbs], fy, fx,
                              mean, std, normalise, out[None])


#: Downscale factors the DCT-domain rescale offers (:func:`cdomain.kernels.downscale_blocks`).
SCALE_FACTORS = (1, 2, 4)


def downscale_image(image: DCTImage, factor: int, method: str = "area") -> DCTImage:
    """``image`` downscaled by ``factor`` (1, 2 or 4) on its coefficients, every component alike.

    Each component's block grid shrinks by ``factor`` (:func:`cdomain.kernels.downscale_blocks`,
    requantized with the component's own table), so chroma subsampling and the luma/chroma
    alignment are kept; odd block counts are padded by replicating the last block row / column.
    The pixel size becomes ``ceil(height / factor) x ceil(width / factor)``, which gives
    libjpeg's block counts for the new grids.
    """
    if factor == 1:
        return image
    parts = tuple(
        kernels.downscale_blocks(coefficients, table, factor, method)
        for coefficients, table in zip(image.coefficients, image.quant_tables)
    )
    return replace(image, coefficients=parts, height=-(-image.height // factor), width=-(-image.width // factor))


def scale_factors(scale: tuple[int, int] | None) -> tuple[int, ...]:
    """The factors of :data:`SCALE_FACTORS` inside the range ``scale = (low, high)`` (None: (1,)).

    Raises ValueError naming ``scale`` when the range is malformed or holds no factor.
    """
    if scale is None:
        return (1,)
    try:
        low, high = scale
    except (TypeError, ValueError):
        raise ValueError(f"scale must be a pair (low, high) of downscale factors, got {scale!r}") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (low, high)) or not 1 <= low <= high:
        raise ValueError(f"scale must be integers 1 <= low <= high, got {scale!r}")
    factors = tuple(f for f in SCALE_FACTORS if low <= f <= high)
    if not factors:
        raise ValueError(f"scale {low},{high} holds none of the downscale factors {SCALE_FACTORS}")
    return factors


def random_scaled_region(
    image: DCTImage,
    crop: tuple[int, int] | None,
    rng: np.random.Generator,
    scale: tuple[int, int],
    small: str = "pad",
) -> tuple[DCTImage, Region]:
    """A RandomResizedCrop-like training region: random size, random place, fixed output size.

    Draws a factor ``k`` uniformly among the factors of ``scale`` (see :func:`scale_factors`)
    whose region of ``k x crop`` pixels fits inside the image, cuts a random MCU-aligned region of
    that size in the DCT domain and downscales it by ``k``, so the sample is ``crop`` pixels
    and covers ``k^2`` times the area of a plain crop. If no factor's region fits, the smallest
    factor is used and ``small`` decides as in :func:`locate_region`. The returned
    :class:`Region` is in source pixels (``k x crop`` high and wide).
    """
    factors = scale_factors(scale)
    if crop is None:
        raise ValueError("a scale range needs a crop size (the output size of every sample)")
    rows, cols = aligned_blocks(image)
    fitting = [k for k in factors if rows * 8 >= crop[0] * k and cols * 8 >= crop[1] * k]
    factor = fitting[int(rng.integers(0, len(fitting)))] if fitting else factors[0]
    image, region = locate_region(image, (crop[0] * factor, crop[1] * factor), rng, small)
    return downscale_image(image, factor), region


@functools.lru_cache(maxsize=64)
def _neutral(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(n, np.float32), np.ones(n, np.float32)


def file_tables(image: DCTImage) -> tuple[np.ndarray, ...]:
    """The image's quantization tables, checked (entries 1..65535) once per file, as int64 ``[1, 64]``."""
    rows = []
    for table in image.quant_tables:
        checked = _checked_table(table.dtype.str, table.tobytes()) if table.size == 64 else None
        if checked is None:
            raise ValueError(f"{image.source}: quantization tables must be 8x8 with entries in 1..65535")
        rows.append(checked)
    return tuple(rows)


@functools.lru_cache(maxsize=256)
def _checked_table(dtype: str, data: bytes) -> np.ndarray | None:
    """A table as read-only int64 ``[1, 64]``, by content (files share a few tables), or None
    if an entry is outside 1..65535."""
    values = np.frombuffer(data, dtype=np.dtype(dtype))
    if values.min() < 1 or values.max() > 65535:
        return None
    rows = _host.table_rows(values)
    rows.flags.writeable = False
    return rows


class SampleRandom:
    """Cheap per-sample randomness derived from ``(seed, epoch, index)`` alone.

    A counter-based generator (SplitMix64): creating one costs a few integer operations,
    where ``np.random.default_rng`` costs tens of microseconds per sample, and its values depend
    only on the key, not on which worker draws them. ``integers(low, high)`` (high exclusive)
    and ``random()`` follow ``np.random.Generator``'s signatures; any other Generator method a
    transform asks for comes from a ``default_rng`` seeded with the same key, made on first use.
    """

    __slots__ = ("_key", "_state", "_generator")
    _MASK = (1 << 64) - 1
    _GAMMA = 0x9E3779B97F4A7C15

    def __init__(self, seed: int, epoch: int, index: int) -> None:
        self._key = (int(seed), int(epoch), int(index))
        state = self._prefix(self._key[0], self._key[1])
        self._state = self._mix((state ^ (self._key[2] & self._MASK)) + self._GAMMA)
        self._generator = None

    @classmethod
    @functools.lru_cache(maxsize=16)
    def _prefix(cls, seed: int, epoch: int) -> int:
        """The state after mixing in ``seed`` and ``epoch`` (the same for a whole epoch)."""
        state = 0
        for part in (seed, epoch):
            state = cls._mix((state ^ (part & cls._MASK)) + cls._GAMMA)
        return state

    @classmethod
    def _mix(cls, x: int) -> int:
        x &= cls._MASK
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & cls._MASK
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & cls._MASK
        return x ^ (x >> 31)

    def _next(self) -> int:
        self._state = (self._state + self._GAMMA) & self._MASK
        return self._mix(self._state)

    def random(self) -> float:
        """A float in [0, 1)."""
        return (self._next() >> 11) * (1.0 / (1 << 53))

    def integers(self, low: int, high: int | None = None) -> int:
        """An int in ``[low, high)`` (``[0, low)`` with one argument)."""
        if high is None:
            low, high = 0, low
        span = int(high) - int(low)
        if span <= 0:
            raise ValueError(f"integers: high must be greater than low, got {low}..{high}")
        return int(low) + ((self._next() * span) >> 64)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if self._generator is None:
            self._generator = np.random.default_rng(list(k & self._MASK for k in self._key))
        return getattr(self._generator, name)
