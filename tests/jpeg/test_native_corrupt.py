"""Corrupt and unsupported input: the native decoder raises JPEGError, never crashes or hangs.

Hand-built streams hit each kind of corruption exactly: they use Huffman tables in which every
symbol has a 4-bit code (the symbol's index; 1111 is never a code), so a test writes the
symbol sequence it wants. Truncation at every byte and random mutations of real files cover the
rest; whenever a mutated file decodes, libjpeg must decode it to the same coefficients (or at
least warn about it).
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path

import jpeglib
import numpy as np
import pytest
from PIL import Image

from cdomain import JPEGError
from cdomain.jpeg.reader import read_coefficients
from cdomain.jpeg.tables import ZIGZAG
from tests.jpeg.native_corpus import (
    _quiet_stderr,
    _scripts,
    differences,
    libjpeg_decode,
    make_image,
    pillow_bytes,
)
from tests.jpeg.libjpeg_oracle import libjpeg_decode as oracle_decode

DC_SYMBOLS = list(range(12))
AC_SYMBOLS = [0x00, 0x01, 0x02, 0x03, 0x11, 0x21, 0xF0, 0xF1, 0x50, 0x13]


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body


def dht(table_class: int, number: int, symbols: list[int], counts: list[int] | None = None):
    counts = counts if counts is not None else [0, 0, 0, len(symbols)] + [0] * 12
    return segment(0xC4, bytes([table_class << 4 | number, *counts, *symbols]))


def dqt(number: int = 0, value: int = 1) -> bytes:
    return segment(0xDB, bytes([number]) + bytes([value] * 64))


def sof(marker: int = 0xC0, height: int = 8, width: int = 8, components=((1, 1, 1, 0),),
        precision: int = 8) -> bytes:
    body = bytes([precision]) + height.to_bytes(2, "big") + width.to_bytes(2, "big")
    body += bytes([len(components)])
    for ident, h, v, table in components:
        body += bytes([ident, h << 4 | v, table])
    return segment(marker, body)


def sos(components=((1, 0, 0),), ss: int = 0, se: int = 63, ah: int = 0, al: int = 0) -> bytes:
    body = bytes([len(components)])
    for ident, dc, ac in components:
        body += bytes([ident, dc << 4 | ac])
    return segment(0xDA, body + bytes([ss, se, ah << 4 | al]))


class Bits:
    """Entropy-coded data with the 4-bit codes of the test tables, stuffed and 1-padded."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def put(self, value: int, count: int) -> Bits:
        self.bits += [(value >> i) & 1 for i in reversed(range(count))]
        return self

    def dc(self, diff: int) -> Bits:
        size = abs(diff).bit_length()
        self.put(DC_SYMBOLS.index(size), 4)
        return self.put(diff if diff >= 0 else diff - 1 + (1 << size), size)

    def ac(self, symbol: int, value: int = 0) -> Bits:
        self.put(AC_SYMBOLS.index(symbol), 4)
        size = symbol & 15
        return self.put(value if value >= 0 else value - 1 + (1 << size), size)

    def bytes(self) -> bytes:
        bits = self.bits + [1] * (-len(self.bits) % 8)
        out = bytearray()
        for i in range(0, len(bits), 8):
            byte = int("".join(map(str, bits[i : i + 8])), 2)
            out += b"\xff\x00" if byte == 0xFF else bytes([byte])
        return bytes(out)


def baseline(*scans: bytes, frame: bytes | None = None, tables: bytes | None = None,
             before: bytes = b"", after: bytes = b"\xff\xd9") -> bytes:
    """SOI, tables, frame (8x8 gray by default), then ``scans`` (headers + data), then EOI."""
    tables = tables if tables is not None else (dqt() + dht(0, 0, DC_SYMBOLS)
                                                + dht(1, 0, AC_SYMBOLS))
    return b"\xff\xd8" + before + tables + (frame or sof()) + b"".join(scans) + after


def one_block(dc: int = 5, *ac: tuple[int, int]) -> Bits:
    bits = Bits().dc(dc)
    for symbol, value in ac:
        bits.ac(symbol, value)
    return bits.ac(0x00)


def native(data: bytes):
    return read_coefficients(data, backend="native")


def test_hand_built_stream_decodes_like_libjpeg():
    data = baseline(sos() + one_block(-3, (0x01, 1), (0x21, -1), (0xF1, 1)).bytes())
    image = native(data)
    block = image.y[0, 0].reshape(-1)
    assert block[0] == -3 and block[ZIGZAG[1]] == 1 and block[ZIGZAG[4]] == -1
    assert block[ZIGZAG[20]] == 1 and np.count_nonzero(block) == 4
    assert not differences(image, read_coefficients(data, backend="jpeglib"))


def _two_blocks_with_restart(marker: bytes) -> bytes:
    first, second = one_block(4).bytes(), one_block(-2).bytes()
    return baseline(sos() + first + marker + second, frame=sof(width=16),
                    before=segment(0xDD, b"\x00\x01"))


@pytest.mark.parametrize(
    "data,cause",
    [
        (baseline(sos() + b"\xff\x00\xff\x00"), "invalid Huffman code"),
        (baseline(sos() + one_block(1, (0x50, 0)).bytes()), "invalid AC symbol 0x50"),
        (baseline(sos() + one_block(1, *[(0xF1, 1)] * 4).bytes()), "past the end"),
        (baseline(sos() + one_block(1, *[(0xF0, 0)] * 4).bytes()), "past the end"),
        (baseline(sos() + one_block(7).bytes(), frame=sof(width=16)), "ends before the scan"),
        (baseline(sos() + one_block(7).bytes() + b"\x12\x34"), "extraneous bytes"),
        (baseline(sos() + one_block(7).bytes() + b"\xff\x00"), "extraneous bytes"),
        (baseline(sos() + one_block(7).bytes() + b"\xff\xc4\xff\x00", after=b""),
         "truncated|corrupt"),
        (_two_blocks_with_restart(b"\xff\xd3"), r"restart marker out of sequence \(expected RST0"),
        (_two_blocks_with_restart(b""), "extraneous bytes"),
        (_two_blocks_with_restart(b"\xff\xd9"), "restart marker RST0 missing"),
    ],
    ids=["bad-code", "bad-ac-symbol", "run-past-63", "zrl-past-63", "data-exhausted",
         "extraneous-bytes", "extraneous-stuffed-byte", "marker-inside-scan", "rst-sequence",
         "rst-absent", "rst-missing"],
)
def test_entropy_coded_corruption(data, cause):
    with pytest.raises(JPEGError, match=cause):
        native(data)


def test_restart_intervals_decode_when_intact():
    image = native(_two_blocks_with_restart(b"\xff\xd0"))
    assert image.y[0, 0, 0, 0] == 4 and image.y[0, 1, 0, 0] == -2  # predictor reset at RST0


BLOCK = one_block(2).bytes()


@pytest.mark.parametrize(
    "data,cause",
    [
        (baseline(sos(ss=1) + BLOCK), "sequential scan with Ss"),
        (baseline(sos(al=1) + BLOCK), "sequential scan with"),
        (baseline(sos(((7, 0, 0),)) + BLOCK), "scan names component 7"),
        (baseline(sos(((1, 0, 0), (1, 0, 0))) + BLOCK), "scan names component 1"),
        (baseline(sos(((1, 1, 0),)) + BLOCK), "Huffman table that was never defined"),
        (baseline(sos(((1, 0, 5),)) + BLOCK), "Huffman table that was never defined"),
        (baseline(sos() + BLOCK, tables=dqt() + dht(0, 0, [0, 16] + DC_SYMBOLS[2:])
                  + dht(1, 0, AC_SYMBOLS)), "DC Huffman table with a symbol above 15"),
        (baseline(sos() + BLOCK, tables=dqt() + dht(0, 0, [0, 1], [2] + [0] * 15)
                  + dht(1, 0, AC_SYMBOLS)), "more codes than fit"),
        (baseline(sos() + BLOCK, tables=dqt(1) + dht(0, 0, DC_SYMBOLS) + dht(1, 0, AC_SYMBOLS)),
         "quantization table 0 is used but never defined"),
        (baseline(segment(0xDA, b"") + BLOCK), "start-of-scan"),
        (baseline(segment(0xDA, b"\x01\x01\x00\x00\x3f") + BLOCK), "start-of-scan"),
        (baseline(sos() + BLOCK, tables=dqt() + segment(0xC4, b"\x00" * 10)), "DHT"),
        (baseline(sos() + BLOCK, tables=segment(0xDB, b"\x00" + b"\x01" * 63)), "DQT"),
        (baseline(sos() + BLOCK, tables=dqt(0, 0)), "zero entry"),
    ],
    ids=["ss", "al", "unknown-component", "repeated-component", "undefined-dc-table",
         "table-number-5", "dc-symbol-16", "oversubscribed", "undefined-quant-table",
         "empty-sos", "short-sos", "short-dht", "short-dqt", "zero-quant-entry"],
)
def test_bad_scan_headers_and_tables(data, cause):
    with pytest.raises(JPEGError, match=cause):
        native(data)


def progressive(*scans: bytes, frame: bytes | None = None) -> bytes:
    return baseline(*scans, frame=frame or sof(0xC2))


DC_SCAN = sos(se=0) + Bits().dc(6).bytes()


@pytest.mark.parametrize(
    "data,cause",
    [
        (progressive(sos(se=5) + BLOCK), "invalid progressive scan parameters"),
        (progressive(sos(ss=5, se=2) + BLOCK), "invalid progressive scan parameters"),
        (progressive(sos(ss=1, se=64) + BLOCK), "invalid progressive scan parameters"),
        (progressive(sos(se=0, al=14) + BLOCK), "invalid progressive scan parameters"),
        (progressive(sos(se=0, ah=3, al=1) + BLOCK), "invalid progressive scan parameters"),
        (progressive(sos(ss=1, se=63) + Bits().ac(0x00).bytes()), "refines coefficients not"),
        (progressive(DC_SCAN, sos(se=0, ah=1, al=0) + b"\x00"), "refines coefficients not"),
        (progressive(sos(se=0, al=1) + Bits().dc(6).bytes(),
                     sos(ss=1, se=5) + Bits().ac(0xF1, 1).bytes()), "past the end"),
        (progressive(sos(se=0, al=1) + Bits().dc(6).bytes(),
                     sos(ss=1, se=63, al=1) + Bits().ac(0x01, 1).ac(0x00).bytes(),
                     sos(ss=1, se=63, ah=1) + Bits().ac(0x02, 1).bytes()),
         "refinement coefficient of size other than 1"),
    ],
    ids=["dc-with-ac", "ss-after-se", "se-64", "al-14", "ah-not-al-plus-1", "ac-before-dc",
         "refine-never-coded", "ac-first-past-se", "refine-size-2"],
)
def test_bad_progression(data, cause):
    with pytest.raises(JPEGError, match=cause):
        native(data)


def test_hand_built_progressive_stream_decodes_like_libjpeg():
    data = progressive(
        sos(se=0, al=1) + Bits().dc(6).bytes(),
        sos(ss=1, se=63, al=1) + Bits().ac(0x01, 1).ac(0x11, -1).ac(0x00).bytes(),
        sos(se=0, ah=1) + Bits().put(1, 1).bytes(),
        # New +1 at zigzag 2 (correction bit 1 for zigzag 1 on the way), EOB, then the
        # correction bit 0 for zigzag 3.
        sos(ss=1, se=63, ah=1) + Bits().ac(0x01, 1).put(1, 1).ac(0x00).put(0, 1).bytes(),
    )
    image = native(data)
    assert not differences(image, read_coefficients(data, backend="jpeglib"))
    assert image.y[0, 0, 0, 0] == 13


@pytest.mark.parametrize(
    "data,cause",
    [
        (b"\xff\xd8" + b"\xff\x02\x00\x02" + baseline(sos() + BLOCK)[2:], "unknown or unsupp"),
        (baseline(sos() + BLOCK, after=b"\xff\xd8\xff\xd9"), "start-of-image|unexpected"),
        (baseline(sos() + BLOCK, after=sof() + b"\xff\xd9"), "frame header|unexpected marker"),
        (baseline(sos() + BLOCK, after=segment(0xDA, b"\x01\x01\x00\x00\x3f")[:6]),
         "truncated|corrupt"),
        (baseline(sos() + BLOCK, after=b"\xff\xfe\x01\x00abc"), "truncated|corrupt"),
        (baseline(sos() + BLOCK, after=b""), "truncated"),
        (baseline(after=b"\xff\xd9"), "no image data"),
        (baseline(sos() + BLOCK, after=b"\x00\xff\xd9"), "extraneous|corrupt"),
        (b"\xff\xd8" + dqt() + b"\x00" + baseline(sos() + BLOCK)[2:], "expected a marker"),
    ],
    ids=["unknown-marker", "second-soi", "second-sof",
         "cut-sos", "segment-past-end", "no-eoi", "no-scan", "garbage-before-eoi",
         "garbage-between-segments"],
)
def test_marker_level_corruption(data, cause):
    with pytest.raises(JPEGError, match=cause):
        native(data)


def test_more_than_500_scans_are_refused():
    data = progressive(*[DC_SCAN] * 501)
    with pytest.raises(JPEGError, match="more than 500 scans"):
        native(data)
    native(progressive(*[DC_SCAN] * 500))


def test_second_scan_of_a_single_scan_file_is_refused_like_libjpeg():
    # libjpeg: "Didn't expect more than one scan" (an error, not a warning), in both modes.
    data = baseline(sos() + BLOCK, sos() + BLOCK)
    assert "expect more than one scan" in oracle_decode(data)[1]
    for strict in (True, False):
        with pytest.raises(JPEGError, match="another scan after a sequential scan"):
            read_coefficients(data, strict=strict)


def test_more_than_ten_blocks_per_mcu_are_refused():
    frame = sof(components=((1, 4, 4, 0), (2, 1, 1, 0), (3, 1, 1, 0)), height=32, width=32)
    data = baseline(sos(((1, 0, 0), (2, 0, 0), (3, 0, 0))) + BLOCK, frame=frame)
    with pytest.raises(JPEGError, match="10 blocks per MCU"):
        native(data)


@pytest.mark.parametrize(
    "frame,cause",
    [
        (sof(0xC9), "arithmetic"),
        (sof(0xCA), "arithmetic"),
        (sof(0xC3), "lossless"),
        (sof(0xC5), "hierarchical"),
        (sof(precision=12), "12-bit"),
        (sof(precision=16), "16-bit"),
        (sof(components=((1, 1, 1, 0),) * 2), "2-component"),
        (sof(components=((1, 1, 1, 0), (2, 1, 1, 0), (3, 1, 1, 0), (4, 1, 1, 0))), "CMYK"),
        (sof(components=((82, 1, 1, 0), (71, 1, 1, 0), (66, 1, 1, 0))), "RGB-coded"),
        (sof(components=((1, 1, 1, 0), (2, 1, 1, 0), (2, 1, 1, 0))), "duplicate component"),
        (sof(components=((1, 5, 1, 0),)), "sampling factors"),
        (sof(components=((1, 3, 1, 0), (2, 2, 1, 0), (3, 2, 1, 0))), "sampling factors"),
        (sof(components=((1, 1, 1, 0), (2, 1, 1, 0), (3, 1, 2, 0))), "sampling factors"),
        (sof(components=((1, 1, 1, 4),)), "quantization table number"),
        (sof(height=0), "DNL"),
        (sof(width=0), "width is 0"),
        (sof(height=65535, width=65535), "exceeds"),
    ],
)
def test_unsupported_or_impossible_frames(frame, cause):
    with pytest.raises(JPEGError, match=cause):
        native(baseline(sos() + BLOCK, frame=frame))


def test_adobe_transform_zero_means_rgb():
    app14 = segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00")
    frame = sof(components=((1, 1, 1, 0), (2, 1, 1, 0), (3, 1, 1, 0)))
    with pytest.raises(JPEGError, match="RGB-coded"):
        native(baseline(sos() + BLOCK, frame=frame, before=app14))


def test_huge_frame_with_little_data_fails_fast():
    frame = sof(height=4000, width=65000)  # 260 Mpx: allowed, but the data runs out at once
    start = time.perf_counter()
    with pytest.raises(JPEGError, match="ends before the scan"):
        native(baseline(sos() + BLOCK, frame=frame))
    assert time.perf_counter() - start < 5


def test_not_a_jpeg():
    buffer = io.BytesIO()
    Image.fromarray(make_image(8, 8, "photo", 0)).save(buffer, "PNG")
    with pytest.raises(JPEGError, match="PNG"):
        native(buffer.getvalue())
    for data in (b"", b"\xff", b"\xff\xd8", b"\xff\xd8\xff", b"GIF89a"):
        with pytest.raises(JPEGError):
            native(data)


# --------------------------------------------------------------------------------------------
# Truncation and random mutation of real files


def _seed_files() -> list[bytes]:
    files = [
        pillow_bytes(make_image(37, 41, "photo", 1), quality=85, subsampling="4:2:0",
                     progressive=True),
        pillow_bytes(make_image(47, 53, "photo", 2), quality=60, subsampling="4:4:4",
                     restart_marker_blocks=2),
        pillow_bytes(make_image(61, 59, "photo", 3), gray=True, quality=90, progressive=True,
                     optimize=True, restart_marker_rows=2),
        pillow_bytes(make_image(23, 29, "noise", 4), quality=40, subsampling="4:2:2",
                     optimize=True),
    ]
    with tempfile.TemporaryDirectory() as tmp, _quiet_stderr():
        path = Path(tmp) / "s.jpg"
        image = jpeglib.from_spatial(make_image(24, 40, "photo", 5),
                                     scans=_scripts()["prog_deep_approximation"])
        image.samp_factor = ((1, 4), (1, 1), (1, 1))
        image.write_spatial(str(path), qt=90)
        files.append(path.read_bytes())
    return files


SEEDS = _seed_files()


@pytest.mark.parametrize("index", [0, 1])
def test_every_truncation_raises(index):
    data = SEEDS[index]
    for cut in range(1, len(data)):
        with pytest.raises(JPEGError, match="truncated|corrupt|not a JPEG|no image data"):
            native(data[:cut])


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random corruption: bit flips, a random byte, insertion, deletion, a copied chunk,
    truncation, an inserted marker, or a changed byte just after a marker."""
    out = bytearray(data)
    size = len(out)
    op = int(rng.integers(0, 8))
    at = int(rng.integers(0, size))
    if op == 0:
        for _ in range(int(rng.integers(1, 4))):
            out[int(rng.integers(0, size))] ^= 1 << int(rng.integers(0, 8))
    elif op == 1:
        out[at] = int(rng.integers(0, 256))
    elif op == 2:
        out[at:at] = bytes([int(rng.integers(0, 256))])
    elif op == 3:
        del out[at : at + int(rng.integers(1, 8))]
    elif op == 4:
        source = int(rng.integers(0, size))
        out[at:at] = out[source : source + int(rng.integers(1, 32))]
    elif op == 5:
        del out[at:]
    elif op == 6:
        code = [0xD0 + int(rng.integers(0, 8)), 0xD9, 0xDA, 0xC4, 0xDB, 0xDD, 0x00, 0xFF,
                int(rng.integers(0, 256))][int(rng.integers(0, 9))]
        out[max(at, 2):max(at, 2)] = bytes([0xFF, code])
    else:
        marks = [i for i in range(size - 1) if out[i] == 0xFF
                 and out[i + 1] not in (0x00, 0xFF) and not 0xD0 <= out[i + 1] <= 0xD7] or [0]
        start = marks[int(rng.integers(0, len(marks)))]
        out[min(size - 1, start + int(rng.integers(2, 12)))] = int(rng.integers(0, 256))
    return bytes(out)


def fuzz(count: int, seed: int) -> None:
    """Only JPEGError escapes, nothing hangs, and every accepted file decodes as libjpeg does."""
    rng = np.random.default_rng(seed)
    native(SEEDS[0])  # compiled (or loaded from the cache) before timing anything
    accepted = 0
    slowest = 0.0
    for i in range(count):
        data = mutate(SEEDS[i % len(SEEDS)], rng)
        start = time.perf_counter()
        try:
            image = read_coefficients(data)
        except JPEGError as error:
            assert str(error).startswith("<bytes>: "), str(error)
            continue
        except Exception as error:  # pragma: no cover - the failure being tested for
            pytest.fail(f"mutation {i} raised {type(error).__name__}: {error}")
        finally:
            slowest = max(slowest, time.perf_counter() - start)
        accepted += 1
        reference, error, warnings = libjpeg_decode(data)
        assert error is None, f"mutation {i}: native accepted what the jpeglib path rejects"
        problem = differences(image, reference)
        assert not problem or warnings, f"mutation {i}: {problem}, and libjpeg did not warn"
    assert accepted > count // 50  # the mutations are not all fatal: both paths get exercised
    assert slowest < 5.0


def test_fuzz_mutations():
    fuzz(2000, seed=1)


@pytest.mark.slow
def test_fuzz_mutations_long():
    fuzz(50_000, seed=2)
