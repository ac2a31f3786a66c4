"""Decoding only the top of a file (``read_coefficients(..., rows=)``), checked against libjpeg.

In a sequential file with one scan that codes every component, decoding stops after the MCU
row that completes the luma block rows asked for: those rows (and the chroma of the same MCU
rows) are libjpeg's, the blocks below are zero. Every other file decodes whole.
"""

from __future__ import annotations

import numpy as np
import pytest

from cdomain.jpeg.errors import JPEGError
from cdomain.jpeg.markers import parse_header
from cdomain.jpeg.reader import read_coefficients
from tests.jpeg.native_corpus import (
    _markers,
    make_image,
    native_corpus,  # noqa: F401  (fixture)
    pillow_bytes,
)


def _one_scan_of_everything(data: bytes) -> bool:
    """Sequential, one scan, coding every component: read from the bytes, not the decoder."""
    header = parse_header(data)
    scans = _markers(data, 0xDA)
    return not header.progressive and len(scans) == 1 and data[scans[0] + 4] == len(header.components)


def _decoded_rows(oracle, sampling, rows: int) -> list[int]:
    """Block rows of each component that a stop after ``rows`` luma block rows decodes."""
    if len(oracle) == 1:
        return [min(rows, oracle[0].shape[0])]
    mcu_rows = -(-rows // sampling[0][0])
    return [min(plane.shape[0], mcu_rows * v) for plane, (v, _) in zip(oracle, sampling)]


def test_every_corpus_file_decodes_its_top_as_libjpeg_does(native_corpus):
    failures, partial = [], 0
    for name, path in native_corpus:
        data = path.read_bytes()
        try:
            oracle = read_coefficients(data, backend="jpeglib")
        except JPEGError:
            continue
        stops = _one_scan_of_everything(data)
        luma_rows = oracle.y.shape[0]
        for rows in sorted({0, 1, luma_rows // 2 + 1, luma_rows}):
            image = read_coefficients(data, rows=lambda shell, rows=rows: rows)
            keep = (_decoded_rows(oracle.coefficients, oracle.sampling, rows) if stops
                    else [plane.shape[0] for plane in oracle.coefficients])
            partial += stops and keep[0] < luma_rows
            for index, (ours, theirs, k) in enumerate(zip(image.coefficients, oracle.coefficients, keep)):
                if ours.shape != theirs.shape or not np.array_equal(ours[:k], theirs[:k]) or ours[k:].any():
                    failures.append(f"{name} rows={rows} component {index}")
            for ours, theirs in zip(image.quant_tables, oracle.quant_tables):
                if not np.array_equal(ours, theirs):
                    failures.append(f"{name} rows={rows}: tables")
    assert not failures, failures[:10]
    assert partial >= 200  # the corpus exercises the stop, not only the whole decode


def test_the_callback_sees_the_undecoded_image_once():
    data = pillow_bytes(make_image(50, 70, "photo", 3), quality=85, subsampling="4:2:0")
    seen = []

    def rows(shell):
        seen.append((shell.y.shape, shell.cb.shape, shell.sampling, (shell.height, shell.width),
                     any(plane.any() for plane in shell.coefficients), any(t.any() for t in shell.quant_tables)))
        return 2

    image = read_coefficients(data, rows=rows)
    assert seen == [((7, 9, 8, 8), (4, 5, 8, 8), ((2, 2), (1, 1), (1, 1)), (50, 70), False, False)]
    assert image.y[:2].any() and not image.y[2:].any() and not image.cb[1:].any()


def test_none_and_the_jpeglib_backend_decode_whole():
    data = pillow_bytes(make_image(50, 70, "photo", 4), quality=85, subsampling="4:2:0")
    whole = read_coefficients(data)
    assert np.array_equal(read_coefficients(data, rows=lambda shell: None).y, whole.y)

    def refuse(shell):
        raise AssertionError("the jpeglib backend cannot stop early")

    assert np.array_equal(read_coefficients(data, backend="jpeglib", rows=refuse).y, whole.y)


def test_corruption_below_the_rows_goes_unnoticed_and_above_them_does_not():
    """What the docstring warns of: the part below the stop is not read at all."""
    pixels = make_image(256, 64, "noise", 5)
    data = pillow_bytes(pixels, quality=95, subsampling="4:2:0")
    cut = data[: len(data) * 3 // 4]  # entropy-coded data ends early
    with pytest.raises(JPEGError, match="truncated|exhausted|marker|ended"):
        read_coefficients(cut)
    top = read_coefficients(cut, rows=lambda shell: 2)
    assert np.array_equal(top.y[:2], read_coefficients(data).y[:2])
    with pytest.raises(JPEGError):
        read_coefficients(cut, rows=lambda shell: shell.y.shape[0])


def test_rows_that_reach_the_bottom_check_the_whole_file():
    data = pillow_bytes(make_image(40, 48, "photo", 6), quality=90, subsampling="4:2:0")
    assert data.endswith(b"\xff\xd9")
    cut = data[:-2]  # no EOI: refused once the whole stream is read
    with pytest.raises(JPEGError):
        read_coefficients(cut)
    assert read_coefficients(cut, rows=lambda shell: 2).y[:2].any()
    with pytest.raises(JPEGError):
        read_coefficients(cut, rows=lambda shell: shell.y.shape[0])
