"""read_coefficients: JPEG bytes, path or file object -> :class:`DCTImage`.

Two backends decode the entropy-coded data; the choice is explicit, never a silent fallback:

``"native"`` (what ``"auto"`` selects)
    cdomain's own decoder (:mod:`cdomain.jpeg.native`, Numba): takes the bytes in memory,
    validates and decodes the whole stream in compiled code that releases the GIL, and is
    bit-exact with libjpeg. It is strict: entropy-coded data that libjpeg would only warn about (invalid
    Huffman codes, data ending early, extraneous bytes, restart markers out of sequence, ...)
    raises :class:`JPEGError` instead of returning coefficients patched with zeros. With
    ``strict=False`` it recovers from such data exactly as libjpeg does (same coefficients).
``"jpeglib"``
    libjpeg through the jpeglib package. The header and every marker segment are first
    validated in Python (:func:`cdomain.jpeg.markers.parse_header`), so malformed files never
    reach the C library's error path; corrupt entropy-coded data is decoded the way libjpeg
    does (warnings only, missing data as zeros).

Both backends reject the same unsupported inputs with :class:`JPEGError`, naming the cause:
12-bit samples, lossless and hierarchical processes, arithmetic coding, CMYK/YCCK and RGB-coded
files, DNL-defined heights and images over ``MAX_PIXELS`` pixels. No input falls back from one
backend to the other. On every file both decode, they return identical coefficients; the one
difference is a file that redefines a quantization table after a component's first scan, where
``"native"`` returns the table that component was coded with and ``"jpeglib"`` the last one.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import tempfile
from typing import BinaryIO, Iterator, Union

import numpy as np

from cdomain.jpeg.errors import JPEGError
from cdomain.jpeg.image import DCTImage
from cdomain.jpeg import native
from cdomain.jpeg.markers import SOI, JPEGHeader, non_jpeg_error, parse_header

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, BinaryIO]

BACKENDS = ("auto", "native", "jpeglib")


def read_coefficients(
    src: Source, *, backend: str = "auto", strict: bool = True, rows: native.RowsNeeded | None = None
) -> DCTImage:
    """Decode a JPEG as far as its quantized DCT coefficients.

    Args:
        src: a path, the file's bytes, or a binary file object open for reading (a file object
            opened in text mode raises :class:`JPEGError`). A path or file object is rejected
            after its first few bytes when they are not a JPEG's start-of-image marker.
        backend: ``"auto"`` (the default: ``"native"``), ``"native"`` or ``"jpeglib"``; see
            the module docstring for how they differ on corrupt data.
        strict: native backend only. True (the default) refuses corrupt entropy-coded data;
            False recovers from it as libjpeg does (the coefficients libjpeg returns, bit for
            bit) and raises only where libjpeg stops with an error.
        rows: native backend only: for a caller that uses only the top of the image (a loader
            cutting a crop). Called with the image before its coefficients are decoded, it
            returns the luma block rows needed from the top (None: all), and a sequential
            file with one scan is decoded only that far; the blocks below stay zero and the
            rest of the file is not checked (see :func:`cdomain.jpeg.native.decode`).

    Raises:
        JPEGError: the source is missing, not a JPEG, truncated, corrupt, or uses an unsupported
            feature (12-bit, lossless, hierarchical, arithmetic coding, CMYK/YCCK). The message
            names the source and the cause. Another image format, 12-bit samples, CMYK/YCCK and
            RGB-coded files raise the subclass :class:`~cdomain.jpeg.errors.UnsupportedFormat`
            (see :mod:`cdomain.jpeg.transcode`).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    data, source, path = _load(src)
    if backend in ("auto", "native"):
        return native.decode(data, source, strict=strict, rows=rows)
    header = parse_header(data, source)
    return _decode_with_jpeglib(data, header, path)


#: Bytes read before deciding whether a source is a JPEG at all: enough for the SOI marker and
#: for :func:`~cdomain.jpeg.markers.describe_non_jpeg` to recognise other formats.
HEAD_BYTES = 16

_TEXT_MODE = "file object must be opened in binary mode (open(path, 'rb')), not text mode"


def _load(src: Source) -> tuple[bytes, str, str | None]:
    """Return the JPEG's bytes, a name for messages, and its path when it is a file on disk.

    Paths and file objects are read in two steps: the first :data:`HEAD_BYTES` bytes, which must
    start with the SOI marker (FF D8), then the rest; anything else is rejected before the whole
    file is read (a multi-gigabyte file that is not a JPEG costs a few bytes, not its size).
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src), "<bytes>", None
    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        try:
            with open(path, "rb", buffering=0) as handle:  # raw: no read-ahead buffer to fill and drop
                return _read_jpeg(handle, path, rewind=True), path, path
        except OSError as error:
            raise JPEGError(path, f"cannot read file: {error.strerror or error}") from error
    if hasattr(src, "read"):
        name = str(getattr(src, "name", "<stream>"))
        if isinstance(src, io.TextIOBase):
            raise JPEGError(name, _TEXT_MODE)
        return _read_jpeg(src, name), name, None
    raise TypeError(f"cannot read a JPEG from {type(src).__name__}; pass a path, bytes or a binary file")


def _read_jpeg(handle: BinaryIO, source: str, *, rewind: bool = False) -> bytes:
    """Read a whole JPEG from ``handle``, checking its first bytes before reading the rest.

    ``rewind``: for a file cdomain opened itself, seek back to the start (when it can) and read
    everything in one call instead of joining the head and the rest (one copy of the data fewer).
    """
    head = _read_chunk(handle, HEAD_BYTES, source)
    if len(head) < 2 or head[0] != 0xFF or head[1] != SOI:
        raise non_jpeg_error(head, source)
    if len(head) < HEAD_BYTES:
        return head
    if rewind and isinstance(handle, io.FileIO) and handle.seekable():  # readall reads to the end
        handle.seek(0)
        return handle.readall()
    if rewind and handle.seekable():
        handle.seek(0)
        return _read_chunk(handle, -1, source)
    return head + _read_chunk(handle, -1, source)


def _read_chunk(handle: BinaryIO, size: int, source: str) -> bytes:
    """``size`` bytes from ``handle`` (fewer only at the end; -1: all the rest), as bytes.

    Loops because raw streams may return short reads; a non-blocking stream with no data ready
    (``read`` returns None) counts as ended. A stream that yields text (a file object opened
    without ``"b"``) raises :class:`JPEGError`, without the text layer's decoding error attached.
    """
    parts: list[bytes] = []
    remaining = size
    while remaining != 0:
        try:
            chunk = handle.read(remaining)
        except UnicodeDecodeError:
            raise JPEGError(source, _TEXT_MODE) from None
        if isinstance(chunk, str):
            raise JPEGError(source, _TEXT_MODE)
        if chunk is not None and not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise JPEGError(source, f"file object's read() returned {type(chunk).__name__}, not bytes")
        if not chunk:
            break
        parts.append(bytes(chunk))
        if remaining > 0:
            remaining -= len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


@contextlib.contextmanager
def _file_path_for(data: bytes) -> Iterator[str]:
    """A filesystem path holding ``data`` for libraries that only open paths.

    Uses an anonymous in-memory file (Linux ``memfd``) so nothing touches the disk; falls back to
    a temporary file elsewhere.
    """
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("cdomain-jpeg", os.MFD_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    handle = tempfile.NamedTemporaryFile(suffix=".jpg", delete=False)
    try:
        with handle:
            handle.write(data)
        yield handle.name
    finally:
        os.unlink(handle.name)


def _decode_with_jpeglib(data: bytes, header: JPEGHeader, path: str | None) -> DCTImage:
    """Entropy-decode with libjpeg (via jpeglib's bundled library), straight from a path.

    jpeglib's public ``read_dct`` copies every file to a temporary file and runs a separate
    header pass; this calls the same C entry point directly on the original path (or an
    in-memory file for bytes), with buffers sized from the already validated header.
    """
    from jpeglib._bind import CJpegLib

    source = header.source
    count = len(header.components)
    planes = [np.zeros((*header.block_dims(i), 8, 8), dtype=np.int16) for i in range(count)]
    tables = np.zeros((4, 64), dtype=np.uint16)
    table_numbers = np.full(4, -1, dtype=np.int16)
    pointers = [plane.ctypes.data_as(ctypes.c_void_p) for plane in planes] + [None] * (4 - count)

    def call(file_path: str) -> int:
        return CJpegLib.get().read_jpeg_dct(
            CJpegLib.cstr(file_path),
            *pointers,
            tables.ctypes.data_as(ctypes.c_void_p),
            table_numbers.ctypes.data_as(ctypes.c_void_p),
        )

    if path is not None:
        status = call(path)
    else:
        with _file_path_for(data) as memory_path:
            status = call(memory_path)
    if status == 0:
        raise JPEGError(source, "libjpeg could not decode the entropy-coded data (corrupt file)")
    quant_tables = []
    for i in range(count):
        number = int(table_numbers[i])
        if not 0 <= number < 4 or not tables[number].any():
            raise JPEGError(source, f"component {i} has no quantization table")
        quant_tables.append(tables[number].reshape(8, 8).copy())
    return DCTImage(
        coefficients=tuple(planes),
        quant_tables=tuple(quant_tables),
        sampling=tuple((c.v_samp, c.h_samp) for c in header.components),
        height=header.height,
        width=header.width,
        color_space=header.color_space,
        progressive=header.progressive,
        source=source,
    )
