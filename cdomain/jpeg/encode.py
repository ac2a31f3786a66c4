"""Encoding: pixels -> quantized coefficients at an IJG quality, in memory or to a JPEG file.

Two ways to change an image's JPEG quality:

- :func:`reencode` decodes to pixels and encodes again at quality Q with cdomain's kernels,
  following libjpeg's encoder step by step (colour conversion as jccolor.c, chroma downsampling
  with jcsample.c's alternating rounding bias, edge replication to whole MCUs, quantization
  rounding as jcdctmgr.c). It differs from libjpeg only where libjpeg's integer forward DCT and
  cdomain's float one round differently (a small fraction of coefficients, by one step). No file
  is written, so it is cheap enough to run per training sample.
- :func:`requantize_image` changes the quantization tables directly on the coefficients
  (dequantize with the old table, quantize with the new one). Faster still, but it skips the
  pixel-domain rounding and clipping, so it is only an approximation of re-encoding.

:func:`write_jpeg` and :func:`write_coefficients` produce real files through libjpeg (jpeglib),
atomically; those are what the on-disk quality caches and size measurements use.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from cdomain import kernels
from cdomain.atomic import atomic_path
from cdomain.jpeg.image import DCTImage
from cdomain.jpeg.tables import quality_table

#: (vertical, horizontal) luma sampling factors per subsampling; chroma is always (1, 1).
SUBSAMPLING_FACTORS = {"4:4:4": (1, 1), "4:2:2": (1, 2), "4:2:0": (2, 2), "4:4:0": (2, 1)}


def quality_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """Baseline IJG luma and chroma tables at ``quality`` (what libjpeg and Pillow write)."""
    return quality_table(quality), quality_table(quality, chroma=True)


def downsample_plane(plane: np.ndarray, factor: tuple[int, int]) -> np.ndarray:
    """libjpeg's (jcsample.c) box downsampling of a uint8 plane by ``(fy, fx)`` in {1, 2}.

    The input must already be edge-replicated to whole MCUs. Averages use libjpeg's alternating
    rounding bias: 0, 1, 0, 1... for 2x1 (h2v1) and 1, 2, 1, 2... for 2x2 (h2v2).
    """
    fy, fx = factor
    values = plane.astype(np.int32)
    if (fy, fx) == (1, 1):
        return plane
    if (fy, fx) == (1, 2):
        summed = values[:, 0::2] + values[:, 1::2]
        bias = np.arange(summed.shape[1]) % 2
        return ((summed + bias) >> 1).astype(np.uint8)
    if (fy, fx) == (2, 2):
        summed = values[0::2, 0::2] + values[0::2, 1::2] + values[1::2, 0::2] + values[1::2, 1::2]
        bias = 1 + np.arange(summed.shape[1]) % 2
        return ((summed + bias) >> 2).astype(np.uint8)
    if (fy, fx) == (2, 1):
        summed = values[0::2] + values[1::2]
        bias = np.arange(summed.shape[1]) % 2
        return ((summed + bias) >> 1).astype(np.uint8)
    raise ValueError(f"unsupported downsampling factor {factor}")


def encode_pixels(
    pixels: np.ndarray, quality: int, subsampling: str = "4:2:0", source: str = "<pixels>"
) -> DCTImage:
    """Encode uint8 RGB ``[H, W, 3]`` (or grayscale ``[H, W]``) to coefficients at ``quality``."""
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ValueError("pixels must be uint8 [H, W, 3] or [H, W]")
    height, width = pixels.shape[:2]
    luma_table, chroma_table = quality_tables(quality)
    if pixels.ndim == 2:
        blocks = kernels.blocks_from_samples(pixels, luma_table)
        return DCTImage((blocks,), (luma_table,), ((1, 1),), height, width, "gray", False, source)
    if subsampling not in SUBSAMPLING_FACTORS:
        raise ValueError(f"subsampling must be one of {', '.join(SUBSAMPLING_FACTORS)}, got {subsampling!r}")
    fy, fx = SUBSAMPLING_FACTORS[subsampling]
    planes = kernels.rgb_to_ycbcr(pixels)
    luma = kernels.blocks_from_samples(np.ascontiguousarray(planes[0]), luma_table)
    # Replicate edges to whole MCUs (jcprepct.c), then downsample chroma (jcsample.c).
    mcu_rows, mcu_cols = -(-height // (8 * fy)) * 8 * fy, -(-width // (8 * fx)) * 8 * fx
    chroma_rows = -(-height * 1 // fy)  # libjpeg's downsampled size, in samples
    chroma_cols = -(-width * 1 // fx)
    chroma = []
    for plane in planes[1:]:
        padded = np.pad(plane, ((0, mcu_rows - height), (0, mcu_cols - width)), mode="edge")
        small = downsample_plane(padded, (fy, fx))
        blocks = kernels.blocks_from_samples(np.ascontiguousarray(small), chroma_table)
        chroma.append(blocks[: -(-chroma_rows // 8), : -(-chroma_cols // 8)].copy())
    return DCTImage(
        coefficients=(luma, chroma[0], chroma[1]),
        quant_tables=(luma_table, chroma_table, chroma_table),
        sampling=((fy, fx), (1, 1), (1, 1)),
        height=height,
        width=width,
        color_space="YCbCr",
        progressive=False,
        source=source,
    )


def reencode(image: DCTImage, quality: int) -> DCTImage:
    """Decode ``image`` to pixels and encode it again at ``quality``, keeping its subsampling."""
    subsampling = image.subsampling if image.subsampling in SUBSAMPLING_FACTORS else "4:2:0"
    return encode_pixels(image.to_rgb(), quality, subsampling, image.source)


def requantize_image(image: DCTImage, quality: int) -> DCTImage:
    """Change ``image``'s quantization to the IJG tables of ``quality`` in the DCT domain."""
    luma_table, chroma_table = quality_tables(quality)
    tables = (luma_table,) + (chroma_table,) * (image.num_components - 1)
    coefficients = tuple(
        kernels.requantize(c, old, new) for c, old, new in zip(image.coefficients, image.quant_tables, tables)
    )
    return replace(image, coefficients=coefficients, quant_tables=tables)


def write_jpeg(pixels: np.ndarray, path: str | os.PathLike[str], quality: int, subsampling: str = "4:2:0") -> Path:
    """Encode pixels with libjpeg at IJG ``quality`` (baseline tables) into ``path``, atomically."""
    import jpeglib

    image = jpeglib.from_spatial(np.ascontiguousarray(pixels if pixels.ndim == 3 else pixels[..., None]))
    if pixels.ndim == 3:
        image.samp_factor = subsampling
    tables = np.stack(quality_tables(quality)) if pixels.ndim == 3 else quality_tables(quality)[0][None]
    with atomic_path(path) as temporary:
        image.write_spatial(temporary, qt=tables)
    return Path(path)


def write_coefficients(image: DCTImage, path: str | os.PathLike[str]) -> Path:
    """Write ``image``'s coefficients losslessly to a JPEG file (libjpeg), atomically."""
    import jpeglib

    planes = list(image.coefficients) + [None] * (3 - image.num_components)
    tables = [image.quant_tables[0]] + ([image.quant_tables[1]] if image.num_components > 1 else [])
    jpeg = jpeglib.from_dct(planes[0], planes[1], planes[2], qt=np.stack(tables))
    with atomic_path(path) as temporary:
        jpeg.write_dct(temporary)
    return Path(path)

