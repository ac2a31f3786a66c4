"""Bad input raises JPEGError naming the source and the cause; nothing kills the interpreter."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cdomain import JPEGError, read_coefficients
from cdomain.jpeg.markers import MAX_PIXELS
from tests.helpers import encode, photo_like

GOOD = encode(photo_like(48, 40), 75)


def patch_frame(data: bytes, marker: int | None = None, precision: int | None = None) -> bytes:
    """Rewrite the SOF0 marker type and/or its sample precision in a baseline file."""
    out = bytearray(data)
    sof = out.index(b"\xff\xc0")
    if marker is not None:
        out[sof + 1] = marker
    if precision is not None:
        out[sof + 4] = precision
    return bytes(out)


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(JPEGError, match="nope.jpg: cannot read file"):
        read_coefficients(missing)


def test_png_renamed_to_jpg(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(photo_like(8, 8)).save(path, "PNG")
    with pytest.raises(JPEGError, match=r"photo\.jpg: not a JPEG: the data is a PNG image"):
        read_coefficients(path)


def test_empty_and_garbage():
    with pytest.raises(JPEGError, match="empty file"):
        read_coefficients(b"")
    with pytest.raises(JPEGError, match="not a JPEG"):
        read_coefficients(b"hello world")


def test_cmyk_is_rejected(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(photo_like(16, 16)).convert("CMYK").save(path, "JPEG")
    with pytest.raises(JPEGError, match=r"cmyk\.jpg: (CMYK|YCCK) JPEGs \(4 components\) are not supported"):
        read_coefficients(path)


@pytest.mark.parametrize(
    "patch,cause",
    [
        (dict(precision=12), "12-bit samples are not supported"),
        (dict(marker=0xC9), "arithmetic-coded"),
        (dict(marker=0xC3), "lossless"),
        (dict(marker=0xC5), "hierarchical"),
    ],
)
def test_unsupported_processes(patch, cause):
    with pytest.raises(JPEGError, match=cause):
        read_coefficients(patch_frame(GOOD, **patch))


def test_absurd_dimensions_rejected_before_allocation():
    data = bytearray(GOOD)
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = bytes([0xFF, 0xFF, 0xFF, 0xFF])  # 65535 x 65535
    assert 65535 * 65535 > MAX_PIXELS
    with pytest.raises(JPEGError, match="exceeds"):
        read_coefficients(bytes(data))


@pytest.mark.parametrize("cut", np.linspace(1, len(GOOD) - 1, 60).astype(int).tolist())
def test_every_truncation_raises(cut):
    with pytest.raises(JPEGError, match="truncated|corrupt|not a JPEG|no image data"):
        read_coefficients(GOOD[:cut])


def test_bit_flips_raise_jpeg_error_or_decode():
    """Random corruption: only JPEGError may escape, and the process must survive."""
    rng = np.random.default_rng(7)
    raised = 0
    for _ in range(300):
        data = bytearray(GOOD)
        for _ in range(int(rng.integers(1, 4))):
            position = int(rng.integers(0, len(data)))
            data[position] ^= 1 << int(rng.integers(0, 8))
        try:
            image = read_coefficients(bytes(data))
        except JPEGError as error:
            assert str(error).startswith("<bytes>: ")
            raised += 1
        else:
            assert image.y.dtype == np.int16
    assert raised > 0


def test_header_flips_are_caught():
    """Flipping bits of the frame header's structure fields must not go unnoticed."""
    sof = GOOD.index(b"\xff\xc0")
    for offset, value in [(2, 0x01), (3, 0x05), (9, 0x04), (9, 0x02)]:  # length, component count
        data = bytearray(GOOD)
        data[sof + offset] = value
        with pytest.raises(JPEGError):
            read_coefficients(bytes(data))


def test_error_is_a_value_error_with_source_and_cause():
    try:
        read_coefficients(io.BytesIO(b"\x89PNG\r\n"))
    except JPEGError as error:
        assert isinstance(error, ValueError)
        assert error.source == "<stream>" and "PNG" in error.cause
