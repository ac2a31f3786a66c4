"""Strict and lenient native decoding against libjpeg (jpeglib's libjpeg 6b) on edited files.

Strict decoding must accept what libjpeg reads without a warning: restart or TEM markers
outside a scan (a restart marker right before EOI), DNL segments with a nonzero frame height,
fill bytes before markers, comments and APPn segments between scans, data after EOI.
Lenient decoding must return libjpeg's coefficients bit for bit wherever libjpeg recovers
(corrupt or truncated entropy-coded data, missing, repeated or renumbered restart markers,
bytes before markers) and raise a JPEGError naming the source wherever libjpeg stops.
The oracle is libjpeg itself (:mod:`tests.jpeg.libjpeg_oracle`), never the code under test.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from cdomain.jpeg.errors import JPEGError
from cdomain.jpeg.reader import read_coefficients
from tests.jpeg.libjpeg_oracle import libjpeg_decode
from tests.jpeg.native_corpus import make_image, pillow_bytes
from tests.jpeg.test_native_corrupt import SEEDS, mutate


def _same(planes, image) -> bool:
    return len(planes) == len(image.coefficients) and all(
        a.shape == b.shape and np.array_equal(a, b) for a, b in zip(planes, image.coefficients))


def _restart_seeds() -> list[bytes]:
    return [
        pillow_bytes(make_image(40, 56, "photo", 11), quality=80, subsampling="4:2:0",
                     restart_marker_blocks=1),
        pillow_bytes(make_image(33, 47, "photo", 12), quality=70, subsampling="4:4:4",
                     restart_marker_blocks=3),
        pillow_bytes(make_image(48, 40, "photo", 13), quality=90, progressive=True,
                     restart_marker_blocks=2),
        pillow_bytes(make_image(29, 31, "photo", 14), gray=True, quality=60,
                     restart_marker_rows=1),
    ]


RESTART_SEEDS = _restart_seeds()


def _eoi(data: bytes) -> int:
    assert data.endswith(b"\xff\xd9")
    return len(data) - 2


def _first_scan(data: bytes) -> int:
    return data.index(b"\xff\xda")


def _silent_variants(data: bytes) -> dict[str, bytes]:
    """Edits libjpeg reads without a warning."""
    eoi, sos = _eoi(data), _first_scan(data)
    last_rst = max((m.start() for m in re.finditer(rb"\xff[\xd0-\xd7]", data)), default=None)
    following = 0xD0 + ((data[last_rst + 1] - 0xD0 + 1) & 7) if last_rst is not None else 0xD0
    comment = b"\xff\xfe\x00\x07hello"
    return {
        "restart marker before EOI": data[:eoi] + bytes([0xFF, following]) + data[eoi:],
        "out-of-sequence restart marker before EOI": data[:eoi] + b"\xff\xd5" + data[eoi:],
        "two restart markers before EOI": data[:eoi] + b"\xff\xd0\xff\xd1" + data[eoi:],
        "restart and TEM markers between header segments":
            data[:sos] + b"\xff\xd3\xff\x01" + data[sos:],
        "restart marker right after SOI": data[:2] + b"\xff\xd0" + data[2:],
        "DNL segment after the scan": data[:eoi] + b"\xff\xdc\x00\x04\x00\x10" + data[eoi:],
        "fill bytes before markers": data[:sos] + b"\xff\xff\xff" + data[sos:eoi] + b"\xff\xff"
                                     + data[eoi:],
        "comment and APP15 before EOI": data[:eoi] + comment + b"\xff\xef\x00\x04ab" + data[eoi:],
        "data after EOI": data + b"trailing garbage \xff\xd8\xff",
    }


@pytest.mark.parametrize("seed", range(len(RESTART_SEEDS)))
def test_strict_accepts_what_libjpeg_reads_silently(seed):
    for name, data in _silent_variants(RESTART_SEEDS[seed]).items():
        planes, messages = libjpeg_decode(data)
        assert planes is not None and messages == "", f"{name}: libjpeg warned: {messages}"
        assert _same(planes, read_coefficients(data)), name
        assert _same(planes, read_coefficients(data, strict=False)), name


def test_strict_still_refuses_what_libjpeg_warns_about():
    data = RESTART_SEEDS[0]
    truncated = data[: len(data) * 2 // 3]
    planes, messages = libjpeg_decode(truncated)
    assert planes is not None and "Premature end" in messages
    with pytest.raises(JPEGError, match="truncated|ends before"):
        read_coefficients(truncated)
    assert _same(planes, read_coefficients(truncated, strict=False))


def _restart_edits(data: bytes, rng: np.random.Generator) -> bytes:
    """Remove, repeat or renumber one restart marker, or put bytes or a stray marker before one."""
    marks = [m.start() for m in re.finditer(rb"\xff[\xd0-\xd7]", data[_first_scan(data):])]
    at = _first_scan(data) + marks[int(rng.integers(0, len(marks)))]
    op = int(rng.integers(0, 5))
    if op == 0:
        return data[:at] + data[at + 2:]
    if op == 1:
        return data[:at] + data[at:at + 2] + data[at:]
    if op == 2:
        return data[:at + 1] + bytes([0xD0 + int(rng.integers(0, 8))]) + data[at + 2:]
    if op == 3:
        return data[:at] + bytes(rng.integers(0, 255, int(rng.integers(1, 5)), dtype=np.uint8)) + data[at:]
    return data[:at] + bytes([0xFF, int(rng.choice([0x01, 0x05, 0xC4, 0xD9, 0xFE, 0xE1]))]) + data[at:]


def _entropy_flip(data: bytes, rng: np.random.Generator) -> bytes:
    """Flip one to three bits inside the entropy-coded data."""
    out = bytearray(data)
    start = _first_scan(data) + 16
    for _ in range(int(rng.integers(1, 4))):
        out[int(rng.integers(start, len(out) - 2))] ^= 1 << int(rng.integers(0, 8))
    return bytes(out)


def _check_lenient(data: bytes, label: str) -> bool:
    """Lenient decoding matches libjpeg; returns whether libjpeg decoded the file."""
    planes, messages = libjpeg_decode(data)
    if planes is None:
        with pytest.raises(JPEGError) as caught:
            read_coefficients(data, strict=False)
        assert str(caught.value).startswith("<bytes>: "), label
        return False
    try:
        image = read_coefficients(data, strict=False)
    except JPEGError as error:  # pragma: no cover - the failure being tested for
        pytest.fail(f"{label}: lenient refused what libjpeg decodes ({messages.strip()}): {error}")
    assert _same(planes, image), f"{label}: coefficients differ from libjpeg ({messages.strip()})"
    return True


@pytest.mark.parametrize("seed", range(len(RESTART_SEEDS)))
def test_lenient_matches_libjpeg_on_every_truncation(seed):
    data = RESTART_SEEDS[seed]
    decoded = sum(_check_lenient(data[:cut], f"cut at {cut}") for cut in range(2, len(data), 7))
    assert decoded > 0


@pytest.mark.parametrize("seed", range(len(RESTART_SEEDS)))
def test_lenient_matches_libjpeg_on_broken_restart_markers(seed):
    rng = np.random.default_rng(100 + seed)
    decoded = sum(_check_lenient(_restart_edits(RESTART_SEEDS[seed], rng), f"restart edit {i}")
                  for i in range(60))
    assert decoded >= 40  # a stray DHT or EOI marker may stop libjpeg; the rest must match


@pytest.mark.parametrize("seed", range(len(RESTART_SEEDS)))
def test_lenient_matches_libjpeg_on_flipped_entropy_bits(seed):
    rng = np.random.default_rng(200 + seed)
    for i in range(80):
        _check_lenient(_entropy_flip(RESTART_SEEDS[seed], rng), f"flip {i}")


def test_lenient_matches_libjpeg_on_random_mutations():
    rng = np.random.default_rng(7)
    decoded = sum(_check_lenient(mutate(SEEDS[i % len(SEEDS)], rng), f"mutation {i}")
                  for i in range(600))
    assert decoded > 100  # both outcomes are exercised


def test_lenient_error_names_the_file(tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(RESTART_SEEDS[0][:200])  # inside the header: libjpeg stops too
    assert libjpeg_decode(path.read_bytes())[0] is None
    with pytest.raises(JPEGError, match=re.escape(str(path))):
        read_coefficients(path, strict=False)
