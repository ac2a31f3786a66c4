"""JPEG header parsing: the frame, its tables and the checks made before any decoding.

A JPEG stream is a sequence of marker segments (T.81 Annex B). This module walks them up to
the first start-of-scan (SOS) and returns what the rest of cdomain needs to know before touching
entropy-coded data: size, precision, components and sampling factors, quantization tables, the
coding process, restart interval and the Adobe colour transform. Anything cdomain does not
support is rejected here, with a :class:`JPEGError` naming the cause, before a decoder allocates
memory or a C library sees the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import re

import numpy as np

from cdomain.jpeg.errors import JPEGError, UnsupportedFormat
from cdomain.jpeg.tables import ZIGZAG

#: Largest image accepted, in pixels; larger headers are rejected before allocation.
MAX_PIXELS = 1 << 28

SOI, EOI, SOS, DQT, DHT, DRI, DNL = 0xD8, 0xD9, 0xDA, 0xDB, 0xC4, 0xDD, 0xDC
APP14 = 0xEE

_SOF_PROCESSES = {
    0xC0: "baseline",
    0xC1: "extended",
    0xC2: "progressive",
    0xC3: "lossless",
    0xC5: "differential sequential (hierarchical)",
    0xC6: "differential progressive (hierarchical)",
    0xC7: "differential lossless (hierarchical)",
    0xC9: "extended, arithmetic-coded",
    0xCA: "progressive, arithmetic-coded",
    0xCB: "lossless, arithmetic-coded",
    0xCD: "differential sequential, arithmetic-coded",
    0xCE: "differential progressive, arithmetic-coded",
    0xCF: "differential lossless, arithmetic-coded",
}
_SUPPORTED_SOF = (0xC0, 0xC1, 0xC2)
_STANDALONE = set(range(0xD0, 0xD8)) | {0x01, SOI, EOI}
_RST = range(0xD0, 0xD8)
_APP_OR_COM = set(range(0xE0, 0xF0)) | {0xFE}
DAC = 0xCC  # arithmetic-coding conditioning: libjpeg skips it in a Huffman-coded file

#: The next marker after entropy-coded data: 0xFF not followed by a stuffed 0x00, an RSTn or fill.
_MARKER_AFTER_DATA = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")

_SIGNATURES = {
    b"\x89PNG": "a PNG image",
    b"GIF8": "a GIF image",
    b"BM": "a BMP image",
    b"RIFF": "a RIFF (e.g. WebP) file",
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
}


@dataclass(frozen=True)
class FrameComponent:
    """One component of the frame header (SOF): identifier, sampling factors, table number."""

    ident: int
    h_samp: int
    v_samp: int
    quant_table_id: int


@dataclass
class JPEGHeader:
    """What the marker segments before the first scan say about an image."""

    source: str
    height: int
    width: int
    precision: int
    process: str
    progressive: bool
    components: tuple[FrameComponent, ...]
    quant_tables: dict[int, np.ndarray] = field(default_factory=dict)
    restart_interval: int = 0
    adobe_transform: int | None = None
    first_scan_offset: int = 0

    @property
    def max_h_samp(self) -> int:
        return max(c.h_samp for c in self.components)

    @property
    def max_v_samp(self) -> int:
        return max(c.v_samp for c in self.components)

    def block_dims(self, index: int) -> tuple[int, int]:
        """libjpeg's ``(height_in_blocks, width_in_blocks)`` of component ``index``."""
        comp = self.components[index]
        rows = -(-self.height * comp.v_samp // (self.max_v_samp * 8))
        cols = -(-self.width * comp.h_samp // (self.max_h_samp * 8))
        return rows, cols

    @property
    def color_space(self) -> str:
        return "gray" if len(self.components) == 1 else "YCbCr"

    def component_quant_table(self, index: int) -> np.ndarray:
        """Quantization table (natural order) used by component ``index``."""
        table_id = self.components[index].quant_table_id
        if table_id not in self.quant_tables:
            raise JPEGError(self.source, f"quantization table {table_id} is used but never defined")
        return self.quant_tables[table_id]


def describe_non_jpeg(data: bytes) -> str:
    """A cause string for data that does not start with a JPEG SOI marker."""
    if not data:
        return "empty file"
    for signature, kind in _SIGNATURES.items():
        if data.startswith(signature):
            return f"not a JPEG: the data is {kind}"
    return f"not a JPEG: no start-of-image marker (first bytes {data[:4].hex()})"


def non_jpeg_error(data: bytes, source: str) -> JPEGError:
    """The error for data without a start-of-image marker: :class:`UnsupportedFormat` when the
    data is an image in another format (a transcoder can convert it), else :class:`JPEGError`."""
    cause = describe_non_jpeg(data)
    other_format = any(data.startswith(signature) for signature in _SIGNATURES)
    return (UnsupportedFormat if other_format else JPEGError)(source, cause)


def parse_header(data: bytes, source: str = "<bytes>") -> JPEGHeader:
    """Parse and validate the marker segments of ``data`` up to its first scan.

    Raises :class:`JPEGError` for non-JPEG data, truncation, malformed segments and every
    unsupported feature (12-bit, lossless, hierarchical, arithmetic coding, CMYK/YCCK, RGB-coded
    files, DNL-defined height, more than :data:`MAX_PIXELS` pixels).
    """
    size = len(data)
    if size < 2 or data[0] != 0xFF or data[1] != SOI:
        raise non_jpeg_error(data, source)
    pos = 2
    frame: dict | None = None
    quant_tables: dict[int, np.ndarray] = {}
    huffman_tables: set[tuple[int, int]] = set()
    restart_interval = 0
    adobe_transform: int | None = None
    while True:
        marker, pos = _next_marker(data, pos, source)
        if marker in _STANDALONE:
            if marker == EOI:
                raise JPEGError(source, "end-of-image marker before any scan: no image data")
            continue  # RSTn and TEM outside a scan: parameterless, libjpeg skips them
        body, next_pos = _segment(data, pos, marker, source)
        if marker == SOS:
            if frame is None:
                raise JPEGError(source, "scan before frame header (no SOF marker)")
            header = _build_header(source, frame, quant_tables, restart_interval, adobe_transform)
            header.first_scan_offset = pos - 2
            _check_scan(header, body, huffman_tables)
            _check_rest_of_stream(header, data, next_pos, huffman_tables)
            return header
        if 0xC0 <= marker <= 0xCF and marker not in (DHT, 0xC8, 0xCC):
            if frame is not None:
                raise JPEGError(source, "more than one frame header (SOF marker)")
            frame = _parse_frame(marker, body, source)
        elif marker == DQT:
            _parse_dqt(body, quant_tables, source)
        elif marker == DHT:
            _check_dht(body, source, huffman_tables)
        elif marker == DRI:
            restart_interval = _parse_dri(body, source)
        elif marker == DNL:
            pass  # libjpeg skips DNL segments; a zero frame height is refused at the scan
        elif marker == APP14 and body[:5] == b"Adobe" and len(body) >= 12:
            adobe_transform = body[11]
        elif marker not in _APP_OR_COM and marker != DAC:
            raise JPEGError(source, f"corrupt: unknown or unsupported marker 0xFF{marker:02X}")
        pos = next_pos


def read_quant_tables(data: bytes) -> dict[int, np.ndarray]:
    """The quantization tables (natural order) defined before the first scan, by number.

    Walks the marker segments without validating the frame, so it also reads files that
    :func:`parse_header` refuses (CMYK, 12-bit, ...); stops quietly at anything malformed.
    """
    tables: dict[int, np.ndarray] = {}
    if data[:2] != b"\xff\xd8":
        return tables
    pos = 2
    try:
        while True:
            marker, pos = _next_marker(data, pos, "<bytes>")
            if marker in _STANDALONE:
                if marker == EOI:
                    return tables
                continue
            body, pos = _segment(data, pos, marker, "<bytes>")
            if marker == SOS:
                return tables
            if marker == DQT:
                _parse_dqt(body, tables, "<bytes>")
    except JPEGError:
        return tables


def _segment(data: bytes, pos: int, marker: int, source: str) -> tuple[bytes, int]:
    """The body of the marker segment whose length field is at ``pos``, and the offset after it."""
    if pos + 2 > len(data):
        raise JPEGError(source, "truncated inside a marker segment header")
    length = (data[pos] << 8) | data[pos + 1]
    if length < 2 or pos + length > len(data):
        raise JPEGError(source, f"truncated or corrupt: segment 0x{marker:02X} claims {length} bytes")
    return data[pos + 2 : pos + length], pos + length


def _parse_dri(body: bytes, source: str) -> int:
    if len(body) != 2:
        raise JPEGError(source, "malformed restart interval (DRI) segment")
    return (body[0] << 8) | body[1]


def _check_scan(header: JPEGHeader, body: bytes, huffman_tables: set[tuple[int, int]]) -> None:
    """Validate a start-of-scan header against the frame and the tables defined so far.

    These are the conditions under which libjpeg stops with an error rather than a warning;
    catching them here keeps malformed files away from a C library's error path.
    """
    source = header.source
    if not body or len(body) != 4 + 2 * body[0] or not 1 <= body[0] <= 4:
        raise JPEGError(source, "malformed start-of-scan (SOS) segment")
    count = body[0]
    ss, se, ah, al = body[1 + 2 * count], body[2 + 2 * count], body[3 + 2 * count] >> 4, body[3 + 2 * count] & 15
    by_ident = {c.ident: c for c in header.components}
    scan_components = []
    for i in range(count):
        ident, selectors = body[1 + 2 * i], body[2 + 2 * i]
        if ident not in by_ident or by_ident[ident] in scan_components:
            raise JPEGError(source, f"corrupt: scan names component {ident}, not (or twice) in the frame")
        component = by_ident[ident]
        scan_components.append(component)
        if component.quant_table_id not in header.quant_tables:
            raise JPEGError(source, f"quantization table {component.quant_table_id} is used but never defined")
        dc_table, ac_table = selectors >> 4, selectors & 15
        needs_dc = ss == 0 and ah == 0
        needs_ac = se > 0
        if (needs_dc and (0, dc_table) not in huffman_tables) or (needs_ac and (1, ac_table) not in huffman_tables):
            raise JPEGError(source, "corrupt: scan uses a Huffman table that was never defined")
    if header.progressive:
        bad = se > 63 or ss > se or (ss == 0 and se != 0) or (ss > 0 and count != 1) or al > 13
        bad = bad or (ah != 0 and al != ah - 1)
        if bad:
            raise JPEGError(source, f"corrupt: invalid progressive scan parameters Ss={ss} Se={se} Ah={ah} Al={al}")
    else:
        if count > 1 and sum(c.h_samp * c.v_samp for c in scan_components) > 10:
            raise JPEGError(source, "corrupt: more than 10 blocks per MCU in an interleaved scan")
        if (ss, se, ah, al) != (0, 63, 0, 0):
            raise JPEGError(source, f"corrupt: sequential scan with Ss={ss} Se={se} Ah={ah} Al={al}")


def _check_rest_of_stream(header: JPEGHeader, data: bytes, pos: int, huffman_tables: set[tuple[int, int]]) -> None:
    """Walk every marker after the first scan header up to EOI and validate each segment."""
    source = header.source
    while True:
        found = _MARKER_AFTER_DATA.search(data, pos)
        if found is None:
            raise JPEGError(source, "truncated: no end-of-image marker after the image data")
        marker, pos = _next_marker(data, found.start(), source)
        if marker == EOI:
            return
        if marker in _RST or marker == 0x01:
            continue  # parameterless; libjpeg skips them (a restart marker before EOI, say)
        if marker in _STANDALONE:
            raise JPEGError(source, f"corrupt: unexpected marker 0xFF{marker:02X} between scans")
        body, pos = _segment(data, pos, marker, source)
        if marker == SOS:
            _check_scan(header, body, huffman_tables)
        elif marker == DHT:
            _check_dht(body, source, huffman_tables)
        elif marker == DQT:
            _parse_dqt(body, header.quant_tables, source)
        elif marker == DRI:
            _parse_dri(body, source)
        elif marker not in _APP_OR_COM and marker not in (DNL, DAC):
            raise JPEGError(source, f"corrupt: unexpected marker 0xFF{marker:02X} after the first scan")


def _next_marker(data: bytes, pos: int, source: str) -> tuple[int, int]:
    """Find the marker at ``pos`` (after optional 0xFF fill bytes); return it and the next offset."""
    size = len(data)
    if pos >= size:
        raise JPEGError(source, "truncated: the data ends before the first scan")
    if data[pos] != 0xFF:
        raise JPEGError(source, f"corrupt: expected a marker at byte {pos}, found 0x{data[pos]:02X}")
    while pos < size and data[pos] == 0xFF:
        pos += 1
    if pos >= size:
        raise JPEGError(source, "truncated: the data ends inside a marker")
    marker = data[pos]
    if marker == 0x00:
        raise JPEGError(source, f"corrupt: stuffed zero byte where a marker was expected at {pos}")
    return marker, pos + 1


def _parse_frame(marker: int, body: bytes, source: str) -> dict:
    process = _SOF_PROCESSES.get(marker, f"SOF 0x{marker:02X}")
    if marker not in _SUPPORTED_SOF:
        raise JPEGError(source, f"unsupported JPEG process: {process}")
    if len(body) < 6:
        raise JPEGError(source, "malformed frame header (SOF too short)")
    precision = body[0]
    height = (body[1] << 8) | body[2]
    width = (body[3] << 8) | body[4]
    count = body[5]
    if len(body) != 6 + 3 * count:
        raise JPEGError(source, f"malformed frame header: {count} components in {len(body)} bytes")
    components = []
    for i in range(count):
        ident, factors, table = body[6 + 3 * i : 9 + 3 * i]
        components.append(FrameComponent(ident, factors >> 4, factors & 15, table))
    return {
        "marker": marker,
        "process": process,
        "precision": precision,
        "height": height,
        "width": width,
        "components": tuple(components),
    }


def _build_header(
    source: str,
    frame: dict,
    quant_tables: dict[int, np.ndarray],
    restart_interval: int,
    adobe_transform: int | None,
) -> JPEGHeader:
    precision, height, width = frame["precision"], frame["height"], frame["width"]
    components: tuple[FrameComponent, ...] = frame["components"]
    if precision != 8:
        raise UnsupportedFormat(source, f"{precision}-bit samples are not supported (only 8-bit)")
    if height == 0:
        raise JPEGError(source, "height defined by a DNL marker is not supported")
    if width == 0:
        raise JPEGError(source, "image width is 0")
    if height * width > MAX_PIXELS:
        raise JPEGError(source, f"image of {width}x{height} pixels exceeds the {MAX_PIXELS} limit")
    count = len(components)
    if count == 4:
        kind = "YCCK" if adobe_transform == 2 else "CMYK"
        raise UnsupportedFormat(source, f"{kind} JPEGs (4 components) are not supported")
    if count not in (1, 3):
        raise JPEGError(source, f"{count}-component JPEGs are not supported (only 1 or 3)")
    if len({c.ident for c in components}) != count:
        raise JPEGError(source, "duplicate component identifiers in the frame header")
    if count == 3 and (
        adobe_transform == 0 or (adobe_transform is None and [c.ident for c in components] == [82, 71, 66])
    ):
        raise UnsupportedFormat(source, "RGB-coded JPEGs (no YCbCr transform) are not supported")
    for comp in components:
        if not (1 <= comp.h_samp <= 4 and 1 <= comp.v_samp <= 4):
            raise JPEGError(source, f"invalid sampling factors {comp.h_samp}x{comp.v_samp}")
        if comp.quant_table_id > 3:
            raise JPEGError(source, f"invalid quantization table number {comp.quant_table_id}")
    header = JPEGHeader(
        source=source,
        height=height,
        width=width,
        precision=precision,
        process=frame["process"],
        progressive=frame["marker"] == 0xC2,
        components=components,
        quant_tables=dict(quant_tables),
        restart_interval=restart_interval,
        adobe_transform=adobe_transform,
    )
    for comp in components:
        if header.max_h_samp % comp.h_samp or header.max_v_samp % comp.v_samp:
            raise UnsupportedFormat(
                source, "sampling factors that do not divide the largest ones are not supported"
            )
    if count == 3 and (components[1].h_samp, components[1].v_samp) != (
        components[2].h_samp,
        components[2].v_samp,
    ):
        raise UnsupportedFormat(source, "Cb and Cr with different sampling factors are not supported")
    return header


def _parse_dqt(body: bytes, tables: dict[int, np.ndarray], source: str) -> None:
    pos = 0
    while pos < len(body):
        precision, table_id = body[pos] >> 4, body[pos] & 15
        if precision > 1 or table_id > 3:
            raise JPEGError(source, "malformed quantization table (DQT) segment")
        count = 64 * (precision + 1)
        raw = body[pos + 1 : pos + 1 + count]
        if len(raw) != count:
            raise JPEGError(source, "truncated quantization table (DQT) segment")
        dtype = ">u2" if precision else "u1"
        zigzag_values = np.frombuffer(raw, dtype=dtype).astype(np.uint16)
        if np.any(zigzag_values == 0):
            raise JPEGError(source, "quantization table with a zero entry")
        natural = np.empty(64, dtype=np.uint16)
        natural[ZIGZAG] = zigzag_values
        tables[table_id] = natural.reshape(8, 8)
        pos += 1 + count


def _check_dht(body: bytes, source: str, defined: set[tuple[int, int]]) -> None:
    """Validate Huffman table definitions and record ``(class, number)`` of each in ``defined``.

    The code-space check is libjpeg's (jdhuff.c ``jpeg_make_d_derived_tbl``): after assigning the
    canonical codes of each length ``l``, the next code must still be below ``2**l``.
    """
    pos = 0
    while pos < len(body):
        if pos + 17 > len(body) or (body[pos] >> 4) > 1 or (body[pos] & 15) > 3:
            raise JPEGError(source, "malformed Huffman table (DHT) segment")
        table_class, number = body[pos] >> 4, body[pos] & 15
        counts = body[pos + 1 : pos + 17]
        total = sum(counts)
        if total > 256 or pos + 17 + total > len(body):
            raise JPEGError(source, "malformed Huffman table (DHT) segment")
        code = 0
        for length, count in enumerate(counts, start=1):
            code += count
            if code >= 1 << length and count:
                raise JPEGError(source, "corrupt: Huffman table with more codes than fit their lengths")
            code <<= 1
        if table_class == 0 and any(symbol > 15 for symbol in body[pos + 17 : pos + 17 + total]):
            raise JPEGError(source, "corrupt: DC Huffman table with a symbol above 15")
        defined.add((table_class, number))
        pos += 17 + total
