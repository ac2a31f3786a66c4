"""Zigzag order and IJG quality tables against independent sources."""

from __future__ import annotations

import io

import jpeglib
import numpy as np
import pytest
from PIL import Image

from cdomain.jpeg.tables import BASE_CHROMA, BASE_LUMA, ZIGZAG, estimate_quality, quality_table
from tests.helpers import encode, photo_like

# ITU-T T.81 Figure A.6 (natural index at each zigzag position), as listed in docs/references.md,
# "JPEG standard (ITU-T T.81)".
STANDARD_ZIGZAG = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27,
    20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58,
    59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
]


def test_zigzag_matches_the_standard():
    assert ZIGZAG.tolist() == STANDARD_ZIGZAG


def test_zigzag_walks_antidiagonals():
    # Independent property: zigzag visits anti-diagonals u+v = 0, 1, 2, ... in order.
    diagonals = [index // 8 + index % 8 for index in ZIGZAG]
    assert diagonals == sorted(diagonals)


def test_base_tables_are_annex_k():
    assert BASE_LUMA[0].tolist() == [16, 11, 10, 16, 24, 40, 51, 61]
    assert BASE_LUMA[7].tolist() == [72, 92, 95, 98, 112, 100, 103, 99]
    assert BASE_CHROMA[0].tolist() == [17, 18, 24, 47, 99, 99, 99, 99]
    assert BASE_CHROMA[3, 0] == 47 and BASE_CHROMA[7, 7] == 99


@pytest.mark.parametrize("quality", range(1, 101))
def test_quality_tables_match_pillow(quality):
    image = Image.open(io.BytesIO(encode(photo_like(16, 16), quality=quality)))
    luma, chroma = (np.array(image.quantization[i]).reshape(8, 8) for i in (0, 1))
    assert np.array_equal(quality_table(quality), luma)
    assert np.array_equal(quality_table(quality, chroma=True), chroma)
    assert estimate_quality(luma, chroma) == quality


@pytest.mark.parametrize("quality", [1, 7, 23, 50, 64, 88, 100])
def test_quality_tables_match_jpeglib(tmp_path, quality):
    path = str(tmp_path / "q.jpg")
    jpeglib.from_spatial(photo_like(16, 16)).write_spatial(path, qt=quality)
    written = jpeglib.read_dct(path)
    # jpeglib calls jpeg_set_quality with force_baseline=FALSE: entries may exceed 255.
    assert np.array_equal(quality_table(quality, force_baseline=False), written.qt[0])
    assert np.array_equal(quality_table(quality, chroma=True, force_baseline=False), written.qt[1])
    assert estimate_quality(written.qt[0], written.qt[1]) == quality


def test_quality_scaling_hand_computed():
    # Q=10: S = 5000/10 = 500; entry = (500*16 + 50)//100 = 80; Q=90: S = 20; (20*16+50)//100 = 3.
    assert quality_table(10)[0, 0] == 80
    assert quality_table(90)[0, 0] == 3
    assert quality_table(1).max() == 255 and quality_table(100).max() == 1
    with pytest.raises(ValueError):
        quality_table(0)


def test_estimate_quality_of_foreign_tables_is_nearest():
    table = quality_table(60).astype(np.int64)
    table[0, 0] += 1  # not an IJG table any more
    assert estimate_quality(table) in (59, 60, 61)
