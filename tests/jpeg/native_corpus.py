"""A generated corpus of JPEG files for the native decoder's bit-exactness tests.

Files come from two independent encoders. Pillow (libjpeg-turbo) writes a grid of sizes (1x1 up
to 1500x1000, odd and prime sizes included), every quality 1..100, custom quantization tables,
4:4:4/4:2:2/4:2:0/grayscale, standard and optimised Huffman tables, restart intervals and
progressive mode. jpeglib (libjpeg 6b) writes what Pillow cannot: sampling factors such as 4:1:1,
4:4:0, 10 blocks per MCU and chroma sampled finer than luma, 16-bit quantization tables (SOF1),
non-interleaved and two-component sequential scans, and custom progressive scripts. A few files
are derived by editing valid streams: progressive files cut after each scan (missing scans),
tables and comments added between scans, and 0xFF fill bytes before markers.

Everything is deterministic (fixed seeds), so a failure names a file that can be regenerated.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

ImageFile.MAXBLOCK = 1 << 25  # Pillow's default buffer is too small for progressive noise

SIZES = [
    (1, 1), (1, 2), (2, 1), (1, 9), (9, 1), (3, 5), (7, 7), (8, 8), (9, 9), (13, 17),
    (15, 16), (16, 15), (16, 16), (17, 17), (23, 29), (31, 32), (32, 31), (33, 33), (37, 41),
    (47, 53), (61, 59), (64, 64), (67, 71), (97, 89), (101, 103), (128, 96), (131, 137),
    (199, 211), (257, 251),
]
QUALITIES = [1, 2, 3, 5, 8, 10, 15, 20, 25, 30, 40, 50, 60, 70, 75, 80, 85, 90, 93, 95, 97, 98,
             99, 100]
KINDS = ["photo", "noise", "photo", "flat", "gradient", "photo"]
RESTARTS = [None, ("restart_marker_blocks", 1), None, ("restart_marker_blocks", 3), None,
            ("restart_marker_rows", 1), None, ("restart_marker_rows", 2)]


def make_image(height: int, width: int, kind: str, seed: int) -> np.ndarray:
    """uint8 RGB pixels: ``photo`` (smooth, edges, noise), ``noise``, ``flat`` or ``gradient``."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == "flat":
        return np.full((height, width, 3), rng.integers(0, 256, 3), dtype=np.uint8)
    rows, cols = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    if kind == "gradient":
        image = np.stack([255 * rows, 255 * cols, 255 * (1 - rows) * cols], axis=-1)
    else:
        phase = rng.uniform(0, 6, 3)
        image = np.stack([
            128 + 90 * np.sin(7 * rows + 4 * cols + phase[0]),
            128 + 80 * np.cos(11 * cols * rows + phase[1]),
            90 + 120 * ((rows - 0.5) ** 2 + (cols - 0.4) ** 2 < 0.1) + 20 * np.sin(phase[2]),
        ], axis=-1)
        image += rng.normal(0, 10, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def pillow_bytes(pixels: np.ndarray, gray: bool = False, **options) -> bytes:
    image = Image.fromarray(pixels)
    if gray:
        image = image.convert("L")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def pillow_cases() -> list[tuple[str, bytes]]:
    """Pillow-written files: every size x subsampling x progressive x optimise, with quality,
    content and restart interval cycling."""
    cases = []
    counter = itertools.count()
    for (height, width), subsampling, progressive, optimize in itertools.product(
        SIZES, ["4:4:4", "4:2:2", "4:2:0", "gray"], [False, True], [False, True]
    ):
        i = next(counter)
        quality = QUALITIES[(i * 7) % len(QUALITIES)]
        kind = KINDS[i % len(KINDS)]
        options = dict(quality=quality, progressive=progressive, optimize=optimize)
        if subsampling != "gray":
            options["subsampling"] = subsampling
        restart = RESTARTS[(i // 3) % len(RESTARTS)]
        if restart:
            options[restart[0]] = restart[1]
        name = (f"pil_{height}x{width}_{subsampling}_q{quality}_{kind}"
                f"{'_prog' if progressive else ''}{'_opt' if optimize else ''}"
                f"{f'_{restart[0][15:]}{restart[1]}' if restart else ''}")
        pixels = make_image(height, width, kind, seed=i)
        cases.append((name, pillow_bytes(pixels, gray=subsampling == "gray", **options)))
    # Every quality 1..100 once, on small images with the options cycling.
    for quality in range(1, 101):
        height, width = 9 + quality % 23, 7 + (quality * 7) % 41
        subsampling = ["4:2:0", "4:4:4", "4:2:2", "gray"][quality % 4]
        options = dict(quality=quality, progressive=quality % 3 == 0, optimize=quality % 5 == 0)
        if subsampling != "gray":
            options["subsampling"] = subsampling
        pixels = make_image(height, width, KINDS[quality % len(KINDS)], seed=500 + quality)
        cases.append((f"pil_quality{quality}_{height}x{width}_{subsampling}",
                      pillow_bytes(pixels, gray=subsampling == "gray", **options)))
    # Custom quantization tables (qtables=): random entries, one table per component.
    rng = np.random.default_rng(600)
    for i, (subsampling, top) in enumerate(itertools.product(["4:2:0", "4:4:4"], [4, 60, 255])):
        tables = [rng.integers(1, top + 1, 64).tolist() for _ in range(3)]
        pixels = make_image(30 + i, 41 - i, "photo", seed=600 + i)
        cases.append((f"pil_qtables{top}_{subsampling}_{i}",
                      pillow_bytes(pixels, qtables=tables, subsampling=subsampling,
                                   progressive=i % 2 == 1)))
    large = [
        ((1000, 1500), dict(quality=85, subsampling="4:2:0"), "photo"),
        ((1000, 1500), dict(quality=60, subsampling="4:4:4", progressive=True,
                            restart_marker_rows=1), "photo"),
        ((999, 1499), dict(quality=95, optimize=True), "gray"),
        ((700, 1000), dict(quality=100, subsampling="4:2:2", progressive=True), "noise"),
        ((701, 997), dict(quality=30, subsampling="4:2:0", restart_marker_blocks=7), "photo"),
    ]
    for i, ((height, width), options, kind) in enumerate(large):
        gray = kind == "gray"
        pixels = make_image(height, width, "photo" if gray else kind, seed=1000 + i)
        cases.append((f"pil_large_{height}x{width}_{kind}_{i}",
                      pillow_bytes(pixels, gray=gray, **options)))
    return cases


@contextlib.contextmanager
def _quiet_stderr():
    """Silence what libjpeg prints to file descriptor 2 (e.g. "tables too coarse" notes)."""
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _scan(components, ss, se, ah, al, tables=None):
    from jpeglib import Scan

    tables = tables if tables is not None else [0] * len(components)
    return Scan(components=np.array(components), dc_tbl_no=np.array(tables),
                ac_tbl_no=np.array(tables), Ss=ss, Se=se, Ah=ah, Al=al)


def _scripts() -> dict[str, list]:
    """Scan scripts libjpeg writes on request (components are frame indices)."""
    full = [_scan([c], 0, 63, 0, 0, [min(c, 1)]) for c in range(3)]
    return {
        "seq_noninterleaved": full,
        "seq_y_then_cbcr": [_scan([0], 0, 63, 0, 0), _scan([1, 2], 0, 63, 0, 0, [1, 1])],
        "seq_cr_cb_y": full[::-1],
        "prog_spectral_only": [
            _scan([0, 1, 2], 0, 0, 0, 0), _scan([0], 1, 5, 0, 0), _scan([2], 1, 63, 0, 0),
            _scan([1], 1, 63, 0, 0), _scan([0], 6, 20, 0, 0), _scan([0], 21, 63, 0, 0),
        ],
        "prog_deep_approximation": [
            _scan([0], 0, 0, 0, 3), _scan([1], 0, 0, 0, 1), _scan([2], 0, 0, 0, 0),
            _scan([0], 1, 63, 0, 4), _scan([1], 1, 63, 0, 0), _scan([2], 1, 9, 0, 0),
            _scan([2], 10, 63, 0, 0), _scan([0], 0, 0, 3, 2), _scan([0], 0, 0, 2, 1),
            _scan([0], 0, 0, 1, 0), _scan([1], 0, 0, 1, 0), _scan([0], 1, 63, 4, 3),
            _scan([0], 1, 63, 3, 2), _scan([0], 1, 63, 2, 1), _scan([0], 1, 63, 1, 0),
        ],
        "prog_band_split_refine": [
            _scan([0, 1, 2], 0, 0, 0, 1), _scan([0], 1, 2, 0, 2), _scan([0], 3, 63, 0, 1),
            _scan([1], 1, 63, 0, 1), _scan([2], 1, 63, 0, 1), _scan([0], 1, 2, 2, 1),
            _scan([0, 1, 2], 0, 0, 1, 0), _scan([0], 1, 63, 1, 0), _scan([1], 1, 63, 1, 0),
            _scan([2], 1, 63, 1, 0),
        ],
    }


def jpeglib_cases() -> list[tuple[str, bytes]]:
    """libjpeg-written files (through jpeglib): sampling factors, 16-bit tables, scan scripts."""
    import jpeglib

    cases = []
    samplings = {
        "420": ((2, 2), (1, 1), (1, 1)), "411": ((1, 4), (1, 1), (1, 1)),
        "440": ((2, 1), (1, 1), (1, 1)), "422": ((1, 2), (1, 1), (1, 1)),
        "24": ((2, 4), (1, 1), (1, 1)), "42": ((4, 2), (1, 1), (1, 1)),
        "31": ((3, 1), (1, 1), (1, 1)), "inverse": ((1, 1), (2, 2), (2, 2)),
        "chroma21": ((2, 2), (2, 1), (2, 1)),
    }
    sizes = [(1, 1), (5, 3), (17, 29), (40, 56), (63, 65), (150, 97)]
    coarse = np.stack([np.full((8, 8), 300, np.uint16), np.arange(1, 65, dtype=np.uint16)
                       .reshape(8, 8) * 37])  # 16-bit entries: an extended (SOF1) file
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), _quiet_stderr():
        warnings.simplefilter("ignore")
        path = str(Path(tmp) / "out.jpg")

        def write(name, pixels, samp=None, scans=None, **kwargs):
            image = jpeglib.from_spatial(pixels, scans=scans) if scans else \
                jpeglib.from_spatial(pixels)
            if samp is not None:
                image.samp_factor = samp
            image.write_spatial(path, **kwargs)
            cases.append((name, Path(path).read_bytes()))

        for i, ((name, samp), (height, width)) in enumerate(
            itertools.product(samplings.items(), sizes)
        ):
            pixels = make_image(height, width, KINDS[i % len(KINDS)], seed=2000 + i)
            quality = QUALITIES[(i * 5) % len(QUALITIES)]
            flags = [["+OPTIMIZE_CODING"], ["+PROGRESSIVE_MODE"], []][i % 3]
            write(f"jl_{name}_{height}x{width}_q{quality}_{'_'.join(flags) or 'std'}", pixels,
                  samp, qt=quality, flags=flags)
        for i, (height, width) in enumerate([(16, 16), (45, 61), (120, 80)]):
            pixels = make_image(height, width, "noise" if i == 1 else "photo", seed=2100 + i)
            write(f"jl_qt16_{height}x{width}", pixels, qt=coarse)
            write(f"jl_qt16_prog_{height}x{width}", pixels, qt=coarse,
                  flags=["+PROGRESSIVE_MODE"])
        for i, ((name, script), (height, width), samp) in enumerate(itertools.product(
            _scripts().items(), [(8, 8), (37, 53), (96, 128)], ["420", "411", "inverse"]
        )):
            pixels = make_image(height, width, KINDS[i % len(KINDS)], seed=2200 + i)
            quality = [50, 90, 100, 20][i % 4]
            write(f"jl_{name}_{samp}_{height}x{width}_q{quality}", pixels, samplings[samp],
                  scans=script, qt=quality)
    return cases


#: The marker that ends entropy-coded data: 0xFF not followed by stuffing, RSTn or fill.
_MARKER_AFTER_DATA = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")


def _markers(data: bytes, code: int) -> list[int]:
    """Offsets of every 0xFF<code> marker outside entropy-coded data (good enough for SOS)."""
    return [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == code]


def edited_cases(base: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Valid streams derived by editing: missing scans, segments between scans, fill bytes."""
    cases = []
    progressive = [(n, d) for n, d in base if "_prog" in n and "_large" not in n]
    for name, data in progressive[::9]:
        starts = _markers(data, 0xDA)
        for k in range(1, len(starts)):
            # End the file where scan k's data ends (before the tables of scan k + 1).
            header = starts[k - 1] + 2 + int.from_bytes(data[starts[k - 1] + 2 : starts[k - 1] + 4],
                                                         "big")
            cut = _MARKER_AFTER_DATA.search(data, header).start()
            cases.append((f"{name}_first{k}scans", data[:cut] + b"\xff\xd9"))
    comment = b"\xff\xfe\x00\x0fbetween scans"
    for name, data in (base[5], base[40], *progressive[1:60:12]):
        starts = _markers(data, 0xDA)
        last = starts[-1]
        dqt = data.index(b"\xff\xdb")
        dqt_end = dqt + 2 + int.from_bytes(data[dqt + 2 : dqt + 4], "big")
        # A copy of the first DQT segment and a comment right before the last scan, and 0xFF
        # fill bytes before it and before EOI.
        edited = (data[:last] + data[dqt:dqt_end] + comment + b"\xff\xff\xff" + data[last:-2]
                  + b"\xff\xff\xd9")
        cases.append((f"{name}_segments_between_scans", edited))
    filled = 0
    for name, data in base:
        if ("_blocks" in name or "_rows" in name) and "_large" not in name and filled < 40:
            filled += 1
            # 0xFF fill bytes before every RSTn marker in the entropy-coded data.
            edited = bytearray()
            i = 0
            while i < len(data):
                if data[i] == 0xFF and i + 1 < len(data) and 0xD0 <= data[i + 1] <= 0xD7:
                    edited += b"\xff\xff"
                edited.append(data[i])
                i += 1
            cases.append((f"{name}_fill_before_rst", bytes(edited)))
    return cases


def build_corpus(directory: Path) -> list[tuple[str, Path]]:
    """Write the whole corpus into ``directory``; return ``(name, path)`` pairs."""
    base = pillow_cases() + jpeglib_cases()
    cases = base + edited_cases(base)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for index, (name, data) in enumerate(cases):
        path = directory / f"{index:04d}_{name}.jpg"
        path.write_bytes(data)
        written.append((name, path))
    return written


# --------------------------------------------------------------------------------------------
# Fixture and comparison helpers shared by the test_native_* modules

_BUILT: dict[str, list[tuple[str, Path]]] = {}


@pytest.fixture(scope="session")
def native_corpus(tmp_path_factory) -> list[tuple[str, Path]]:
    """The corpus, written once per session into a temporary directory."""
    if "files" not in _BUILT:
        _BUILT["files"] = build_corpus(tmp_path_factory.mktemp("native-corpus"))
    return _BUILT["files"]


def differences(ours, reference) -> str:
    """What differs between two DCTImages ("" when they are identical)."""
    problems = []
    for field in ("height", "width", "color_space", "progressive", "sampling", "num_components"):
        if getattr(ours, field) != getattr(reference, field):
            problems.append(f"{field} {getattr(ours, field)} != {getattr(reference, field)}")
    for index, (a, b) in enumerate(zip(ours.coefficients, reference.coefficients)):
        if a.dtype != np.int16 or a.shape != b.shape:
            problems.append(f"component {index}: {a.dtype} {a.shape} vs {b.dtype} {b.shape}")
        elif not np.array_equal(a, b):
            problems.append(f"component {index}: {int(np.sum(a != b))} coefficients differ")
    for index, (a, b) in enumerate(zip(ours.quant_tables, reference.quant_tables)):
        if a.dtype != np.uint16 or not np.array_equal(a, b):
            problems.append(f"quantization table of component {index} differs")
    return "; ".join(problems)


def libjpeg_decode(data: bytes):
    """Decode with the jpeglib backend, capturing what libjpeg prints to stderr (its warnings).

    Returns ``(image or None, JPEGError message or None, warnings text)``.
    """
    from cdomain import JPEGError
    from cdomain.jpeg.reader import read_coefficients

    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            try:
                image, error = read_coefficients(data, backend="jpeglib"), None
            except JPEGError as exc:
                image, error = None, str(exc)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        return image, error, captured.read().decode(errors="replace")
