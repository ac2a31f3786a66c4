"""JPEG constant tables: zigzag order, IJG base quantization tables and quality scaling.

Everything here follows ITU-T T.81 (the JPEG standard) and the IJG libjpeg implementation
(``jcparam.c``), which Pillow, jpeglib and most encoders share.
"""

from __future__ import annotations

import numpy as np

#: Natural (row-major) index of the coefficient at each zigzag position 0..63 (T.81 Figure A.6).
ZIGZAG = np.array(
    [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
        12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
        35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
        58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    ],
    dtype=np.int64,
)
ZIGZAG.flags.writeable = False

#: Zigzag position of each natural index (the inverse permutation of ZIGZAG).
ZIGZAG_RANK = np.argsort(ZIGZAG)
ZIGZAG_RANK.flags.writeable = False

#: T.81 Annex K, Table K.1: luminance quantization table, natural order.
BASE_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.uint16,
)
BASE_LUMA.flags.writeable = False

#: T.81 Annex K, Table K.2: chrominance quantization table, natural order.
BASE_CHROMA = np.full((8, 8), 99, dtype=np.uint16)
BASE_CHROMA[:4, :4] = [
    [17, 18, 24, 47],
    [18, 21, 26, 66],
    [24, 26, 56, 99],
    [47, 66, 99, 99],
]
BASE_CHROMA.flags.writeable = False


def quality_scale(quality: int) -> int:
    """IJG percentage scale factor for ``quality`` in 1..100 (libjpeg ``jpeg_quality_scaling``)."""
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    quality = int(quality)
    return 5000 // quality if quality < 50 else 200 - 2 * quality


def quality_table(quality: int, chroma: bool = False, force_baseline: bool = True) -> np.ndarray:
    """Quantization table (natural order, uint16 [8, 8]) that IJG libjpeg writes at ``quality``.

    ``entry = (scale * base + 50) // 100`` clamped to ``[1, 255]`` (baseline) or ``[1, 32767]``,
    as in libjpeg ``jpeg_add_quant_table``.
    """
    base = (BASE_CHROMA if chroma else BASE_LUMA).astype(np.int64)
    table = (base * quality_scale(quality) + 50) // 100
    return np.clip(table, 1, 255 if force_baseline else 32767).astype(np.uint16)


def estimate_quality(luma_table: np.ndarray, chroma_table: np.ndarray | None = None) -> int:
    """Estimate the IJG quality that produced the given quantization table(s).

    Returns the integer quality whose IJG table is closest (least squared log-ratio) to the
    given ones; an exact match gives that quality exactly. Quality is not stored in a JPEG file,
    only its tables, so files from encoders with custom tables get the nearest IJG equivalent.
    """
    tables = [np.asarray(luma_table, dtype=np.float64).reshape(8, 8)]
    if chroma_table is not None:
        tables.append(np.asarray(chroma_table, dtype=np.float64).reshape(8, 8))
    if any(np.any(t < 1) for t in tables):
        raise ValueError("quantization table entries must be >= 1")
    # Baseline files clamp entries to 255; compare against tables clamped the same way.
    baseline = all(np.all(t <= 255) for t in tables)
    best_quality, best_error = 1, np.inf
    for quality in range(1, 101):
        error = 0.0
        for index, table in enumerate(tables):
            reference = quality_table(quality, chroma=index == 1, force_baseline=baseline)
            error += float(np.sum(np.log(table / reference) ** 2))
        if error < best_error:
            best_quality, best_error = quality, error
    return best_quality
