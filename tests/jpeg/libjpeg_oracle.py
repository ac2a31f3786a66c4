"""libjpeg (through jpeglib, libjpeg 6b) as an oracle for any bytes, warnings included.

jpeglib does not report libjpeg's warnings; libjpeg's default error manager prints the first
one to the standard error stream. :func:`libjpeg_decode` runs jpeglib's coefficient reader on
a file holding the bytes with file descriptor 2 redirected, and returns the coefficients (None
where libjpeg stopped with an error) and whether libjpeg printed a warning or error.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import jpeglib
import numpy as np


@contextlib.contextmanager
def _captured_stderr():
    """Redirect file descriptor 2 (where libjpeg writes) to a temporary file; yield a list
    that receives its text on exit."""
    text: list[str] = []
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text.append(capture.read().decode(errors="replace"))


def libjpeg_decode(data: bytes) -> tuple[tuple[np.ndarray, ...] | None, str]:
    """``(coefficient planes or None on a libjpeg error, libjpeg's messages)``.

    Planes are ``[rows, cols, 8, 8]`` int16 in natural order, as ``read_coefficients`` returns.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "oracle.jpg")
        with open(path, "wb") as handle:
            handle.write(data)
        with _captured_stderr() as messages:
            try:
                image = jpeglib.read_dct(path)
                image.load()
                planes = [image.Y] + ([image.Cb, image.Cr] if image.has_chrominance else [])
            except Exception:  # jpeglib's failure types vary by version
                planes = None
    if planes is None:
        return None, messages[0]
    return tuple(np.ascontiguousarray(p) for p in planes), messages[0]
