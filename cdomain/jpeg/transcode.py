"""Transcoding fallback: images cdomain cannot read in the DCT domain, re-encoded as YCbCr JPEG.

Real datasets hold a few files that are not 8-bit YCbCr (or grayscale) JPEGs: ImageNet has
CMYK JPEGs and PNGs named ``.JPEG``; others hold RGB-coded JPEGs (Adobe transform 0), 12-bit
ones, or chroma sampled in ways cdomain does not lay out. :func:`~cdomain.jpeg.reader.read_coefficients` refuses exactly these with
:class:`~cdomain.jpeg.errors.UnsupportedFormat`; a data pipeline that opts in (``--transcode``)
calls :func:`transcoded_path` for such a file:

1. the file is decoded to pixels with Pillow (CMYK and YCCK converted to RGB by Pillow, with
   the Adobe inversion; RGB-coded JPEGs decoded as RGB; PNG, GIF, BMP, TIFF, WebP through their
   own decoders; an alpha channel is dropped, grey stays grey);
2. the pixels are encoded with libjpeg (:func:`cdomain.jpeg.encode.write_jpeg`) as a 4:2:0
   YCbCr (or grayscale) JPEG, at the IJG quality estimated from the source's quantization
   tables when it is a JPEG, else at :data:`DEFAULT_QUALITY`;
3. the result is written atomically into a cache folder, named after the source's absolute
   path, size and modification time, and reused by later reads.

A 12-bit JPEG is transcoded only where Pillow decodes it (Pillow's libjpeg is usually built
for 8-bit samples only); otherwise it stays refused, with that cause.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from cdomain.jpeg.errors import JPEGError
from cdomain.jpeg.markers import read_quant_tables
from cdomain.jpeg.tables import estimate_quality

#: IJG quality for sources without quantization tables (PNG and other lossless formats).
DEFAULT_QUALITY = 95


def default_cache_dir() -> Path:
    """Where ``--transcode`` caches its copies: ``$CDOMAIN_DATA/transcoded`` (shared by runs;
    each copy is keyed by its source file)."""
    from cdomain.data.embedded import data_dir

    return data_dir() / "transcoded"


def cache_name(path: str | os.PathLike[str]) -> str:
    """The cache file name of ``path``: a hash of its absolute path, size and mtime, in a
    two-character subfolder (``ab/abcdef....jpg``), so a changed source is transcoded again."""
    stat = os.stat(path)
    key = f"{os.path.abspath(path)}\t{stat.st_size}\t{stat.st_mtime_ns}".encode()
    digest = hashlib.sha1(key).hexdigest()
    return f"{digest[:2]}/{digest}.jpg"


def source_quality(data: bytes, default: int = DEFAULT_QUALITY) -> int:
    """The IJG quality estimated from a JPEG's tables 0 and 1; ``default`` without tables."""
    tables = read_quant_tables(data)
    if 0 not in tables:
        return default
    return estimate_quality(tables[0], tables.get(1))


def decode_pixels(data: bytes, source: str) -> np.ndarray:
    """uint8 pixels ``[H, W, 3]`` (RGB) or ``[H, W]`` (grey) of any image Pillow reads."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.mode in ("L", "LA", "1"):
                converted = image.convert("L")
            elif image.mode in ("I", "I;16", "I;16B", "F"):
                values = np.asarray(image, dtype=np.float64)
                top = max(float(values.max()), 1.0)
                return np.clip(np.round(values * (255.0 / (65535.0 if top > 255 else 255.0))), 0,
                               255).astype(np.uint8)
            else:
                converted = image.convert("RGB")
            return np.asarray(converted, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise JPEGError(source, f"cannot transcode: Pillow cannot decode it ({error})") from None


def transcode_to(source: str | os.PathLike[str], target: str | os.PathLike[str],
                 default_quality: int = DEFAULT_QUALITY) -> int:
    """Decode ``source`` to pixels and write it to ``target`` as a YCbCr (or grey) JPEG,
    atomically; returns the IJG quality used."""
    from cdomain.jpeg.encode import write_jpeg

    name = os.fspath(source)
    try:
        data = Path(name).read_bytes()
    except OSError as error:
        raise JPEGError(name, f"cannot read file: {error.strerror or error}") from error
    pixels = decode_pixels(data, name)
    quality = source_quality(data, default_quality) if data[:2] == b"\xff\xd8" else default_quality
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    write_jpeg(pixels, target, quality, "4:2:0")
    return quality


def transcoded_path(source: str | os.PathLike[str], cache_dir: str | os.PathLike[str],
                    default_quality: int = DEFAULT_QUALITY) -> Path:
    """The cached YCbCr JPEG for ``source`` in ``cache_dir``, written first if missing.

    Call it for a file that :func:`~cdomain.jpeg.reader.read_coefficients` refused with
    :class:`~cdomain.jpeg.errors.UnsupportedFormat`. Concurrent callers (loader workers,
    ranks) may write the same file; each write is atomic and the contents are identical.
    """
    target = Path(cache_dir) / cache_name(source)
    if not target.exists():
        transcode_to(source, target, default_quality)
    return target
