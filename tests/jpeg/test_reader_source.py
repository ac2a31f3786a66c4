"""How read_coefficients reads its source: text-mode files, and non-JPEGs rejected early.

A file object opened without "b" is a user error that deserves one clear JPEGError, not a
UnicodeDecodeError from the text layer. A path is rejected after its first bytes when they are
not a JPEG's SOI marker (FF D8), so a huge file of something else costs a few bytes, not its size.
"""

from __future__ import annotations

import io
import sys
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from cdomain import JPEGError, read_coefficients
from tests.helpers import encode, photo_like

GOOD = encode(photo_like(40, 48), 80)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"  # PNG specification, section 5.2


def _reader_module():
    import cdomain.jpeg.reader  # noqa: F401  (the function of the same name is re-exported)

    return sys.modules["cdomain.jpeg.reader"]


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.coefficients, b.coefficients)) and len(a.coefficients) == len(
        b.coefficients
    )


@pytest.fixture
def jpeg_path(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(GOOD)
    return path


def _assert_binary_mode_error(error: JPEGError, source: str) -> None:
    assert error.source == source
    assert "must be opened in binary mode" in error.cause
    assert str(error).startswith(f"{source}: ")
    # One error of ours, not a decoding error from the text layer with ours on top.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_text_mode_file_object_names_the_source(jpeg_path):
    with open(jpeg_path, encoding="utf-8") as handle:  # text mode: JPEG bytes are not UTF-8
        with pytest.raises(JPEGError) as caught:
            read_coefficients(handle)
    _assert_binary_mode_error(caught.value, str(jpeg_path))


def test_text_mode_that_would_decode_is_still_rejected(jpeg_path):
    # latin-1 decodes any byte, so reading would "succeed" and return str.
    with open(jpeg_path, encoding="latin-1") as handle:
        with pytest.raises(JPEGError) as caught:
            read_coefficients(handle)
    _assert_binary_mode_error(caught.value, str(jpeg_path))


def test_string_stream_is_rejected():
    with pytest.raises(JPEGError) as caught:
        read_coefficients(io.StringIO(GOOD.decode("latin-1")))
    _assert_binary_mode_error(caught.value, "<stream>")


class _DuckTextFile:
    """A file-like object that is not an io.TextIOBase but returns str from read()."""

    name = "duck.jpg"

    def __init__(self, data: bytes) -> None:
        self._text = io.StringIO(data.decode("latin-1"))

    def read(self, size: int = -1) -> str:
        return self._text.read(size)


def test_file_like_object_returning_text_is_rejected():
    with pytest.raises(JPEGError) as caught:
        read_coefficients(_DuckTextFile(GOOD))
    _assert_binary_mode_error(caught.value, "duck.jpg")


class _CountingFile:
    """Wraps a binary file; counts the bytes read and refuses any read of more than ``limit``."""

    def __init__(self, handle, limit: int) -> None:
        self._handle, self.limit, self.bytes_read = handle, limit, 0

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self.limit:
            raise AssertionError(f"read({size}) on a file that is not a JPEG")
        data = self._handle.read(size)
        self.bytes_read += len(data)
        return data

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()


def test_huge_non_jpeg_path_is_rejected_after_a_few_bytes(tmp_path, monkeypatch):
    path = tmp_path / "huge.jpg"
    with open(path, "wb") as handle:  # 2 GiB, sparse: a PNG signature, then a hole
        handle.write(PNG_SIGNATURE)
        handle.truncate(2 << 30)
    assert path.stat().st_size == 2 << 30
    opened: list[_CountingFile] = []

    def counting_open(file, mode="r", *args, **kwargs):
        assert "b" in mode
        wrapper = _CountingFile(open(file, mode, *args, **kwargs), limit=1 << 16)
        opened.append(wrapper)
        return wrapper

    monkeypatch.setattr(_reader_module(), "open", counting_open, raising=False)
    with pytest.raises(JPEGError, match=r"huge\.jpg: not a JPEG: the data is a PNG image"):
        read_coefficients(path)
    assert len(opened) == 1 and 2 <= opened[0].bytes_read <= 64


def test_non_jpeg_path_is_not_read_into_memory(tmp_path):
    path = tmp_path / "zeros.jpg"
    with open(path, "wb") as handle:  # 64 MiB of zeros, sparse
        handle.truncate(64 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(JPEGError, match=r"zeros\.jpg: not a JPEG: no start-of-image marker \(first bytes 00000000\)"):
            read_coefficients(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # far below the file's 64 MiB


@pytest.mark.parametrize(
    "content, cause",
    [
        (b"", "empty file"),
        (b"\xff", r"not a JPEG: no start-of-image marker \(first bytes ff\)"),
        (b"GIF89a" + bytes(20), "not a JPEG: the data is a GIF image"),
        (b"\xff\xd9\xff\xd8", r"not a JPEG: no start-of-image marker \(first bytes ffd9ffd8\)"),
    ],
)
def test_path_messages_for_non_jpegs(tmp_path, content, cause):
    path = tmp_path / "x.jpg"
    path.write_bytes(content)
    with pytest.raises(JPEGError, match=rf"x\.jpg: {cause}$"):
        read_coefficients(path)


def test_png_file_object_is_named(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(photo_like(8, 8)).save(path, "PNG")
    with open(path, "rb") as handle:
        with pytest.raises(JPEGError, match=r"photo\.jpg: not a JPEG: the data is a PNG image"):
            read_coefficients(handle)


@pytest.mark.parametrize("backend", ["native", "jpeglib"])
def test_path_file_object_and_bytes_decode_the_same(jpeg_path, backend):
    expected = read_coefficients(GOOD, backend=backend)
    assert _same(read_coefficients(jpeg_path, backend=backend), expected)
    with open(jpeg_path, "rb") as handle:
        assert _same(read_coefficients(handle, backend=backend), expected)
    with open(jpeg_path, "rb", buffering=0) as raw:  # unbuffered: reads may come back short
        assert _same(read_coefficients(raw, backend=backend), expected)


def test_file_object_is_read_from_its_position():
    stream = io.BytesIO(b"container header" + GOOD)
    stream.seek(len(b"container header"))
    assert _same(read_coefficients(stream), read_coefficients(GOOD))


class _ShortReads(io.RawIOBase):
    """A raw stream that returns at most 3 bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data[self._pos : self._pos + min(3, len(buffer))]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def test_short_reads_are_completed():
    assert _same(read_coefficients(_ShortReads(GOOD)), read_coefficients(GOOD))
    with pytest.raises(JPEGError, match="the data is a PNG image"):
        read_coefficients(_ShortReads(PNG_SIGNATURE + bytes(32)))
