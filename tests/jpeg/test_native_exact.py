"""The native decoder is bit-exact with libjpeg: same coefficients, tables and geometry."""

from __future__ import annotations

import tempfile
from pathlib import Path

import jpeglib
import numpy as np

from cdomain.jpeg import native
from cdomain.jpeg.reader import read_coefficients
from tests.jpeg.native_corpus import (
    _scripts,
    differences,
    make_image,
    native_corpus,  # noqa: F401  (fixture)
    pillow_bytes,
)


def test_corpus_covers_what_it_promises(native_corpus):
    names = [name for name, _ in native_corpus]
    assert len(names) >= 500
    for feature in ("_1x1_", "_large_1000x1500", "_4:4:4_", "_4:2:2_", "_4:2:0_", "_gray_",
                    "_prog", "_opt", "_blocks", "_rows", "_q1_", "_q100_", "jl_411_",
                    "jl_440_", "jl_24_", "jl_inverse_", "jl_qt16_", "seq_noninterleaved",
                    "seq_y_then_cbcr", "prog_deep_approximation", "_first1scans",
                    "segments_between_scans", "fill_before_rst", "pil_quality1_",
                    "pil_quality100_", "pil_qtables"):
        assert any(feature in name for name in names), feature


def test_every_file_identical_to_libjpeg(native_corpus):
    failures = []
    for name, path in native_corpus:
        data = path.read_bytes()
        problem = differences(read_coefficients(data, backend="native"),
                              read_coefficients(data, backend="jpeglib"))
        if problem:
            failures.append(f"{path.name}: {problem}")
    assert not failures, "\n".join(failures[:20])


def test_sample_identical_to_jpeglib_read_dct(native_corpus):
    """The jpeglib backend used as the oracle above agrees with jpeglib's public API."""
    for name, path in native_corpus[::23]:
        ours = read_coefficients(path)
        oracle = jpeglib.read_dct(str(path))
        planes = [oracle.Y] + ([oracle.Cb, oracle.Cr] if oracle.has_chrominance else [])
        for mine, theirs in zip(ours.coefficients, planes):
            assert np.array_equal(mine, theirs), name
        for table, number in zip(ours.quant_tables, oracle.quant_tbl_no):
            assert np.array_equal(table, oracle.qt[number]), name


def test_mcu_padding_blocks_are_decoded_but_not_returned():
    # 1x1 4:2:0: one MCU of 4 luma blocks, of which libjpeg keeps one.
    image = native.decode(pillow_bytes(make_image(1, 1, "noise", 1), quality=90,
                                       subsampling="4:2:0"))
    assert [c.shape for c in image.coefficients] == [(1, 1, 8, 8)] * 3
    # 17x33 4:2:0: Y has ceil(17/8) x ceil(33/8) blocks, chroma ceil(9/8) x ceil(17/8).
    data = pillow_bytes(make_image(17, 33, "photo", 2), quality=80, subsampling="4:2:0")
    image = native.decode(data)
    assert [c.shape[:2] for c in image.coefficients] == [(3, 5), (2, 3), (2, 3)]
    assert not differences(image, read_coefficients(data, backend="jpeglib"))


def _scan_starts(data: bytes) -> list[int]:
    return [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xDA]


def test_missing_progressive_scans_leave_zeros():
    pixels = make_image(40, 48, "photo", 3)
    full = pillow_bytes(pixels, quality=85, subsampling="4:4:4", progressive=True)
    starts = _scan_starts(full)
    # Pillow's first progressive scan is the interleaved DC scan with Al = 1; end there.
    second = full.rfind(b"\xff\xc4", 0, starts[1])
    dc_only = native.decode(full[: second if second > starts[0] else starts[1]] + b"\xff\xd9")
    complete = native.decode(full)
    for partial, whole in zip(dc_only.coefficients, complete.coefficients):
        assert not partial[..., 1:].any() and not partial[..., 1:, :].any()
        assert np.array_equal(partial[..., 0, 0], whole[..., 0, 0] & ~1)


def _noninterleaved(pixels: np.ndarray, quality: int = 80) -> bytes:
    """A 4:2:0 sequential file with one scan per component (Y, Cb, Cr), written by libjpeg."""
    image = jpeglib.from_spatial(pixels, scans=_scripts()["seq_noninterleaved"])
    image.samp_factor = ((2, 2), (1, 1), (1, 1))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ni.jpg"
        image.write_spatial(str(path), qt=quality)
        return path.read_bytes()


def test_noninterleaved_scans_cover_only_ceil_blocks():
    data = _noninterleaved(make_image(37, 53, "photo", 4))
    image = native.decode(data)
    assert [c.shape[:2] for c in image.coefficients] == [(5, 7), (3, 4), (3, 4)]
    assert not differences(image, read_coefficients(data, backend="jpeglib"))


def test_component_without_a_scan_is_zero_with_its_table():
    data = _noninterleaved(make_image(24, 24, "photo", 5))
    last = _scan_starts(data)[-1]
    data = data[:last] + b"\xff\xd9"  # drop the Cr scan
    image = native.decode(data)
    assert not image.cr.any() and image.cb.any()
    assert not differences(image, read_coefficients(data, backend="jpeglib"))


def test_quantization_table_is_latched_at_the_first_scan_of_each_component():
    """A DQT between scans changes only components whose first scan comes after it (what
    libjpeg dequantizes with); jpeglib's read_dct reports the last definition instead."""
    data = _noninterleaved(make_image(24, 32, "photo", 6))
    starts = _scan_starts(data)
    redefine = b"\xff\xdb\x00\x43\x01" + bytes([3] * 64)  # table 1, all entries 3
    edited = data[: starts[2]] + redefine + data[starts[2] :]  # before the Cr scan
    image = native.decode(edited)
    original = native.decode(data)
    for ours, theirs in zip(image.coefficients, original.coefficients):
        assert np.array_equal(ours, theirs)
    assert np.array_equal(image.quant_tables[0], original.quant_tables[0])
    assert np.array_equal(image.quant_tables[1], original.quant_tables[1])  # Cb: before
    assert (image.quant_tables[2] == 3).all()  # Cr: first coded after the redefinition
    libjpeg = read_coefficients(edited, backend="jpeglib")
    assert (libjpeg.quant_tables[1] == 3).all()  # the last definition
