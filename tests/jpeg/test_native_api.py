"""read_coefficients with the native backend: backend choice, inputs, outputs, threads."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from cdomain.jpeg import native, reader
from cdomain.jpeg.reader import read_coefficients
from tests.jpeg.native_corpus import differences, make_image, pillow_bytes

DATA = pillow_bytes(make_image(45, 67, "photo", 11), quality=80, subsampling="4:2:0")


def test_auto_means_native(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("libjpeg must not be used")

    monkeypatch.setattr(reader, "_decode_with_jpeglib", refuse)
    assert read_coefficients(DATA).y.shape == (6, 9, 8, 8)
    assert read_coefficients(DATA, backend="native").y.shape == (6, 9, 8, 8)


def test_jpeglib_is_still_selectable(monkeypatch):
    expected = read_coefficients(DATA)

    def refuse(*args, **kwargs):
        raise AssertionError("the native decoder must not be used")

    monkeypatch.setattr(native, "decode", refuse)
    assert not differences(read_coefficients(DATA, backend="jpeglib"), expected)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        read_coefficients(DATA, backend="turbo")


def test_every_kind_of_source_gives_the_same_image(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(DATA)
    reference = read_coefficients(DATA)
    for source in (path, str(path), bytearray(DATA), memoryview(DATA), io.BytesIO(DATA)):
        assert not differences(read_coefficients(source), reference)
    assert read_coefficients(path).source == str(path)
    assert read_coefficients(DATA).source == "<bytes>"


def test_output_arrays():
    image = read_coefficients(DATA)
    assert image.color_space == "YCbCr" and image.subsampling == "4:2:0"
    assert (image.height, image.width, image.progressive) == (45, 67, False)
    for plane in image.coefficients:
        assert plane.dtype == np.int16 and plane.flags.c_contiguous and plane.flags.writeable
    for table in image.quant_tables:
        assert table.dtype == np.uint16 and table.shape == (8, 8)
    # Each decode owns its arrays.
    other = read_coefficients(DATA)
    other.y[...] = 0
    assert image.y.any()


def test_threads_decode_the_same_as_one_thread():
    files = [pillow_bytes(make_image(60 + i, 90 - i, "photo", i), quality=70 + i,
                          progressive=i % 2 == 1) for i in range(8)]
    expected = [read_coefficients(f) for f in files]
    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            for got, want in zip(pool.map(read_coefficients, files), expected):
                assert not differences(got, want)


_PURE_PYTHON = """
import sys
import numpy as np
from cdomain.jpeg import native
from cdomain.jpeg.reader import read_coefficients
from tests.jpeg.native_corpus import make_image, pillow_bytes
for progressive in (False, True):
    data = pillow_bytes(make_image(20, 28, "photo", 3), quality=85, subsampling="4:2:0",
                        progressive=progressive, restart_marker_blocks=2)
    ours, libjpeg = native.decode(data), read_coefficients(data, backend="jpeglib")
    assert len(ours.coefficients) == len(libjpeg.coefficients) == 3
    assert all(np.array_equal(a, b) for a, b in zip(ours.coefficients, libjpeg.coefficients))
print("ok")
"""


def test_decoder_runs_without_compilation():
    """NUMBA_DISABLE_JIT=1 runs the same code as plain Python (slowly), for debugging."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-W", "error::RuntimeWarning", "-c", _PURE_PYTHON]
    result = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
