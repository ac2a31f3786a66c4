"""Native JPEG decoder: bytes -> quantized DCT coefficients, in Numba.

Compiled code walks the whole stream: marker segments (SOI, APPn, COM, DQT, DHT, DRI, SOF0,
SOF1, SOF2, SOS, RSTn, EOI) and the Huffman-coded data of every scan, decoded straight into the
coefficient arrays (a first pass reads the frame header so that NumPy can allocate them). It decodes 8-bit Huffman-coded baseline, extended sequential and progressive
JPEG (spectral selection, successive approximation, EOB runs, refinement) with one or three
components, any sampling factors that divide the largest (up to 10 blocks per MCU, as libjpeg),
restart intervals, interleaved and non-interleaved scans, and tables redefined between scans.
It releases the GIL, so threads decode files in parallel.

The result is bit-exact with libjpeg's ``jpeg_read_coefficients`` (which jpeglib wraps) on every
stream libjpeg decodes without a warning: blocks in MCU padding are decoded but not returned,
non-interleaved scans cover ``ceil`` block counts only, components or bands that no scan codes
stay zero. Each component's quantization table is the one in force at the first scan that codes
it, the table libjpeg dequantizes with (``latch_quant_tables``); for the rare file that redefines
a table after that scan, jpeglib's ``read_dct`` reports the last definition instead. A component
that no scan codes gets the last definition of its table.

It accepts no file that :func:`cdomain.jpeg.markers.parse_header` rejects: the same frame checks
(precision 8, size within ``MAX_PIXELS``, 1 or 3 components, no CMYK/YCCK or RGB-coded files,
sampling factors, table numbers) are made here, before any allocation, and the same table and
scan-header checks. On failure, ``parse_header`` is run to name the cause in its words where it
can (it recognises PNG files, names unsupported processes, ...).

Corruption is detected strictly where libjpeg only warns and carries on; each of these raises
:class:`JPEGError` with the cause and the byte offset:

* a bit pattern that is no Huffman code, an AC symbol with size 0 other than EOB/ZRL (progressive:
  EOBn), a coefficient index past 63 or past the band end ``Se`` (also by a ZRL), a refinement
  symbol of size other than 1;
* data exhausted (a marker or the end of the data) before the scan's last MCU is complete;
* whole bytes left between the end of a scan or restart interval and the next marker
  (libjpeg's "N extraneous bytes before marker"), a missing or out-of-sequence RSTn marker;
* scan headers libjpeg rejects or warns about: bad length, unknown or repeated component ids,
  undefined Huffman or quantization tables, sequential scans with Ss/Se/Ah/Al other than 0/63/0/0,
  progressive parameters out of range, a progression that refines what was never coded;
* invalid Huffman tables (codes overflowing their lengths, DC symbols above 15), rejected when
  defined (libjpeg rejects them when a scan uses them);
* markers that do not belong: a second SOI or SOF, RSTn or TEM outside a scan, DNL, DAC, unknown
  markers, bytes between segments that are not a marker, segments running past the data, data
  ending without EOI, more than ``MAX_SCANS`` scans (against files built to make progressive
  decoding slow).

Markers libjpeg reads without a warning are accepted: RSTn and TEM outside a scan (a restart
marker right before EOI, say), DNL segments when the frame gives the height, DAC segments, 0xFF
fill bytes, APPn and COM segments anywhere, data after EOI. Three things libjpeg does not notice
stay refused in strict mode, because their coefficients are garbage: an AC run past coefficient
63 (or past the band), an AC symbol that is neither a run/size pair nor EOB/ZRL, and a zero
quantizer.

``decode(..., strict=False)`` (lenient) first decodes strictly; a file that fails is decoded again
with libjpeg 6b's recovery, bit-exact with what jpeglib returns: the data is read as if followed by
EOI markers (libjpeg's file source inserts them at the end of the file); a Huffman code that does
not exist reads as 17 bits and symbol 0; when a segment's data runs out, the MCU in progress is
completed with zero bits and the rest of the restart interval left alone; bytes before a marker
are skipped; a missing or wrong restart marker is resynchronised as ``jpeg_resync_to_restart``
does; runs past the band end write where libjpeg's padded natural-order table points;
refinement symbols of size other than 1 count as 1; inconsistent progressions, sequential scans
with other Ss/Se/Ah/Al, repeated scan components, zero quantizers and bad Huffman tables that no
scan uses are accepted. Whatever libjpeg stops on still raises :class:`JPEGError`.

Work is bounded by the number of blocks (at most ``MAX_PIXELS`` / 64 per component, checked
before allocating) times the number of scans; nothing loops on corrupt data.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import overload

from cdomain.jpeg.errors import JPEGError, UnsupportedFormat
from cdomain.jpeg.image import DCTImage
from cdomain.jpeg.markers import MAX_PIXELS, parse_header
from cdomain.jpeg.tables import ZIGZAG

#: Most scans accepted in one file. Valid files have a handful (libjpeg's progressive script
#: writes 10); the cap bounds the work a small file can demand, as TurboJPEG's
#: ``TJPARAM_SCANLIMIT`` does.
MAX_SCANS = 500

_ZZ = np.ascontiguousarray(ZIGZAG, dtype=np.int64)
_ZZ_U = _ZZ.astype(np.uint64)  # for unsigned indexing, which skips negative-index handling
_NO_BUFFER = np.zeros(0, dtype=np.int16)
_NO_MASKS = np.zeros(0, dtype=np.int64)
_NO_TABLES = np.zeros((0, 64), dtype=np.uint16)

# Error codes returned by the compiled code; _MESSAGES turns them into JPEGError causes.
OK = 0
E_BAD_CODE = 1
E_BAD_SYMBOL = 2
E_COEF_OVERFLOW = 3
E_DATA_EXHAUSTED = 4
E_TRUNCATED = 5
E_EXTRANEOUS = 6
E_RST_MISSING = 7
E_RST_SEQUENCE = 8
E_SOS_LENGTH = 9
E_SOS_COMPONENT = 10
E_SOS_DUPLICATE = 11
E_NO_HUFF_TABLE = 12
E_BAD_HUFF_TABLE = 13
E_BAD_DC_SYMBOL = 14
E_NOT_SEQUENTIAL = 15
E_BAD_PROGRESSION = 16
E_BOGUS_PROGRESSION = 17
E_MCU_SIZE = 18
E_NO_QUANT_TABLE = 19
E_DQT = 20
E_DHT = 21
E_DRI = 22
E_SEGMENT = 23
E_SOI = 24
E_SOF = 25
E_DNL = 26
E_RST_OUTSIDE = 27
E_UNKNOWN_MARKER = 28
E_TOO_MANY_SCANS = 29
E_NO_MARKER = 30
E_REFINE_SIZE = 31
E_NOT_JPEG = 32
E_NO_SCAN = 33
E_NO_FRAME = 34
E_UNSUPPORTED_SOF = 35
E_FRAME = 36
E_PRECISION = 37
E_SIZE = 38
E_COMPONENTS = 39
E_RGB = 40
E_SAMPLING = 41
E_DQT_ZERO = 42
E_EXTRA_SCAN = 44
E_NEED_BUFFER = 43  # not an error: the first call's request for the coefficient buffer

_MESSAGES = {
    E_BAD_CODE: "corrupt entropy-coded data: invalid Huffman code",
    E_BAD_SYMBOL: "corrupt entropy-coded data: invalid AC symbol 0x{arg:02X}",
    E_COEF_OVERFLOW: "corrupt entropy-coded data: coefficient index past the end of the band",
    E_DATA_EXHAUSTED: "corrupt or truncated: entropy-coded data ends before the scan is complete",
    E_TRUNCATED: "truncated: the data ends before the end-of-image marker",
    E_EXTRANEOUS: "corrupt entropy-coded data: extraneous bytes before the next marker",
    E_RST_MISSING: "corrupt entropy-coded data: restart marker RST{arg} missing",
    E_RST_SEQUENCE: "corrupt entropy-coded data: restart marker out of sequence "
                    "(expected RST{arg})",
    E_SOS_LENGTH: "corrupt: malformed start-of-scan (SOS) segment",
    E_SOS_COMPONENT: "corrupt: scan names component {arg}, not in the frame",
    E_SOS_DUPLICATE: "corrupt: scan names component {arg} twice",
    E_NO_HUFF_TABLE: "corrupt: scan uses a Huffman table that was never defined",
    E_BAD_HUFF_TABLE: "corrupt: Huffman table with more codes than fit their lengths",
    E_BAD_DC_SYMBOL: "corrupt: DC Huffman table with a symbol above 15",
    E_NOT_SEQUENTIAL: "corrupt: sequential scan with Ss, Se, Ah, Al other than 0, 63, 0, 0",
    E_BAD_PROGRESSION: "corrupt: invalid progressive scan parameters (Ss, Se, Ah, Al)",
    E_BOGUS_PROGRESSION: "corrupt: progressive scan refines coefficients not coded before",
    E_MCU_SIZE: "corrupt: more than 10 blocks per MCU in an interleaved scan",
    E_NO_QUANT_TABLE: "quantization table {arg} is used but never defined",
    E_DQT: "corrupt: malformed quantization table (DQT) segment",
    E_DHT: "corrupt: malformed Huffman table (DHT) segment",
    E_DRI: "corrupt: malformed restart interval (DRI) segment",
    E_SEGMENT: "truncated or corrupt: segment 0x{arg:02X} runs past the end of the data",
    E_SOI: "corrupt: second start-of-image marker",
    E_SOF: "corrupt: more than one frame header (SOF marker)",
    E_DNL: "height defined by a DNL marker is not supported",
    E_RST_OUTSIDE: "corrupt: restart marker outside a scan",
    E_UNKNOWN_MARKER: "corrupt: unknown or unsupported marker 0xFF{arg:02X}",
    E_TOO_MANY_SCANS: f"corrupt: more than {MAX_SCANS} scans",
    E_NO_MARKER: "corrupt: expected a marker, found 0x{arg:02X}",
    E_REFINE_SIZE: "corrupt entropy-coded data: refinement coefficient of size other than 1",
    E_NOT_JPEG: "not a JPEG: no start-of-image marker",
    E_NO_SCAN: "end-of-image marker before any scan: no image data",
    E_NO_FRAME: "scan before frame header (no SOF marker)",
    E_UNSUPPORTED_SOF: "unsupported JPEG process (SOF marker 0xFF{arg:02X})",
    E_FRAME: "corrupt: malformed frame header (SOF)",
    E_PRECISION: "{arg}-bit samples are not supported (only 8-bit)",
    E_SIZE: "image size is 0 or exceeds the pixel limit",
    E_COMPONENTS: "{arg}-component JPEGs are not supported (only 1 or 3)",
    E_RGB: "RGB-coded JPEGs (no YCbCr transform) are not supported",
    E_SAMPLING: "unsupported or invalid sampling factors",
    E_DQT_ZERO: "quantization table with a zero entry",
    E_EXTRA_SCAN: "corrupt: another scan after a sequential scan of every component",
}

# Scan kinds.
_SEQUENTIAL, _DC_FIRST, _DC_REFINE, _AC_FIRST, _AC_REFINE = 0, 1, 2, 3, 4

# Columns of a scan's component table.
_C_H, _C_V, _C_BW, _C_BH, _C_OFF, _C_DC, _C_AC, _C_INDEX = range(8)

# Columns of the frame geometry: per component id, sampling, block counts, offset, table.
_G_ID, _G_H, _G_V, _G_BW, _G_BH, _G_OFF, _G_TQ = range(7)


def decode(data: bytes, source: str = "<bytes>", *, strict: bool = True, rows: RowsNeeded | None = None) -> DCTImage:
    """Decode a whole JPEG file held in ``data`` to its quantized DCT coefficients.

    ``strict`` (the default) raises :class:`JPEGError` naming ``source`` and the cause for
    anything unsupported or corrupt (see the module docstring for what counts as corrupt).
    ``strict=False`` recovers from corrupt or truncated entropy-coded data as libjpeg does
    (see :data:`LENIENT_TAIL` and the module docstring) and raises only where libjpeg stops
    with an error. A file strict decoding accepts is never decoded a second time.

    ``rows`` lets a caller that uses only the top of the image stop early: it is called once
    the headers are read, with the image as it will be returned but not yet decoded (shapes and
    sampling final, coefficients and tables still zero), and returns how many luma block rows from
    the top it needs, or None for all. In a sequential file with one scan, decoding then stops
    after the MCU row that completes them; the blocks below stay zero, and the rest of the file
    is not read, so corruption there goes unnoticed. Other files, and rows that reach the last
    MCU row, decode (and check) whole. A caller that must refuse corrupt files decodes each one
    whole once first.
    """
    try:
        return _decode(data, source, False, rows)
    except JPEGError:
        if strict:
            raise
    return _decode(data + LENIENT_TAIL, source, True, None)


#: Called with the undecoded image; returns the luma block rows the caller needs (None: all).
RowsNeeded = Callable[[DCTImage], "int | None"]

#: Appended to the data in lenient mode: libjpeg's file source inserts a fake EOI marker
#: (FF D9) whenever it is asked for bytes past the end of the file, so a truncated file reads
#: as if followed by EOI markers, also inside a marker segment cut short (up to 65535 bytes).
LENIENT_TAIL = b"\xff\xd9" * 32770


def _decode(data: bytes, source: str, lenient: bool, rows: RowsNeeded | None) -> DCTImage:
    buffer = np.frombuffer(data, dtype=np.uint8)
    strictness = True if lenient else None
    # First call: headers up to the first scan, validated; it returns the buffer size needed.
    # NumPy allocates the buffers (calloc: pages of a huge frame that the data never reaches
    # are never touched), the image is made over them, and the second call decodes into them.
    err, arg, pos, scans, frame, geometry, coef, quant = _decode_jpeg(
        buffer, _NO_BUFFER, _NO_MASKS, _NO_TABLES, MAX_PIXELS, MAX_SCANS, strictness, -1)
    if err == E_NEED_BUFFER:
        coef = np.zeros(arg + 64, dtype=np.int16)
        masks = np.zeros(arg // 64 + 1, dtype=np.int64) if frame[2] else _NO_MASKS
        quant = np.zeros((geometry.shape[0], 64), dtype=np.uint16)
        image = _image(coef, geometry, quant, frame, source)
        stop = -1
        if rows is not None and not frame[2]:
            needed = rows(image)
            stop = -1 if needed is None else max(int(needed), 0)
        err, arg, pos, scans, frame, geometry, coef, quant = _decode_jpeg(
            buffer, coef, masks, quant, MAX_PIXELS, MAX_SCANS, strictness, stop)
        if err == OK:
            return image
    if not lenient:
        parse_header(data, source)  # raises with its own message where it sees the cause
    else:
        _unsupported_feature(data[: -len(LENIENT_TAIL)], source)
    cause = _MESSAGES[int(err)].format(arg=int(arg))
    where = f"scan {int(scans)}, byte {int(pos)}" if scans > 0 else f"byte {int(pos)}"
    raise JPEGError(source, f"{cause} ({where})")


def _image(coef: np.ndarray, geometry: np.ndarray, quant: np.ndarray, frame: np.ndarray, source: str) -> DCTImage:
    """The :class:`DCTImage` over the decoder's buffers (views, no copies)."""
    parts, tables, sampling = [], [], []
    for index, (_, h, v, bw, bh, offset, _) in enumerate(geometry.tolist()):  # columns _G_*
        parts.append(coef[offset : offset + bh * bw * 64].reshape(bh, bw, 8, 8))
        tables.append(quant[index].reshape(8, 8))
        sampling.append((v, h))
    height, width, progressive = frame.tolist()
    return DCTImage(
        coefficients=tuple(parts),
        quant_tables=tuple(tables),
        sampling=tuple(sampling),
        height=height,
        width=width,
        color_space="gray" if len(parts) == 1 else "YCbCr",
        progressive=bool(progressive),
        source=source,
    )


def _unsupported_feature(data: bytes, source: str) -> None:
    """Lenient failures: name an unsupported format or feature in parse_header's words when
    that is the cause (what a transcoding fallback looks for), otherwise return."""
    try:
        parse_header(data, source)
    except UnsupportedFormat:
        raise
    except JPEGError:
        pass


def _lowest_bit(mask):
    """Index of the lowest set bit of a nonzero integer (pure Python, for NUMBA_DISABLE_JIT)."""
    mask = int(mask)
    return (mask & -mask).bit_length() - 1


@overload(_lowest_bit)
def _lowest_bit_compiled(mask):
    return lambda mask: trailing_zeros(mask)  # LLVM cttz


# --------------------------------------------------------------------------------------------
# Huffman tables and the bit reader
#
# A Huffman table (T.81 Annex C) is given by 16 code-length counts and up to 256 symbols. It is
# expanded once per DHT segment into derived tables, one slot per table: DC tables 0..3 take
# slots 0..3, AC tables 0..3 slots 4..7. For each slot:
#
# lut      2**FAST_BITS entries indexed by the next FAST_BITS bits of the stream:
#          (code_length << 8) | symbol for codes of at most FAST_BITS bits, 0 for longer codes.
# fast     the same index, for a symbol *and* its appended magnitude bits when both fit in
#          FAST_BITS bits: (value << 16) | (run << 8) | total_length (AC symbols with a nonzero
#          size, and every DC symbol); 0 otherwise. Most coefficients of a photo decode with a
#          single lookup here (the "fast AC" idea of stb_image and libjpeg-turbo).
# maxcode, valoff, vals
#          the canonical decoding tables of T.81 Figure F.16, for codes longer than FAST_BITS.
#
# The checks are libjpeg's (jpeg_make_d_derived_tbl): no code may be all ones (the code space
# must not overflow at any length) and DC symbols are at most 15. A bad table is rejected when
# it is defined, as parse_header does (libjpeg waits until a scan uses it).
#
# The bit reader keeps up to 56 unread bits right-aligned in an int64 accumulator. Stuffed bytes
# (0xFF 0x00, also after 0xFF fill bytes, as libjpeg reads them) yield 0xFF. At a marker it stops
# and appends zero bits, counting them in ``pad``: a decoder may peek into them, but it has
# consumed data that is not there as soon as ``bits < pad``, which the scan decoders report.
#
# These helpers live in this module on purpose: Numba's on-disk cache of a function is
# invalidated only by changes to its own source file, and the scan decoders inline them.


#: Bits looked up at once; codes (and code + magnitude bits) up to this length take one lookup.
FAST_BITS = 9
FAST_SIZE = 1 << FAST_BITS
FAST_MASK = FAST_SIZE - 1

#: Table status values kept per slot.
TABLE_UNDEFINED, TABLE_OK, TABLE_OVERSUBSCRIBED, TABLE_BAD_DC_SYMBOL = 0, 1, 2, 3

NUM_SLOTS = 8


@njit(nogil=True, cache=True)
def _new_tables(slots):
    """Empty derived tables for ``slots`` slots: ``(status, lut, fast, maxcode, valoff, vals)``."""
    status = np.zeros(slots, dtype=np.int32)
    lut = np.zeros((slots, FAST_SIZE), dtype=np.int32)
    fast = np.zeros((slots, FAST_SIZE), dtype=np.int32)
    maxcode = np.full((slots, 18), -1, dtype=np.int32)
    valoff = np.zeros((slots, 18), dtype=np.int32)
    vals = np.zeros((slots, 256), dtype=np.int32)
    return status, lut, fast, maxcode, valoff, vals


@njit(nogil=True, cache=True)
def extend(x, s):
    """T.81 Figure F.12: the signed value of magnitude category ``s`` whose bits read ``x``."""
    if x < (1 << (s - 1)):
        return x - (1 << s) + 1
    return x


@njit(nogil=True, cache=True)
def build_table(data, start, slot, is_dc, status, lut, fast, maxcode, valoff, vals):
    """Derive the tables of ``slot`` from a DHT entry at ``data[start:]`` (counts, symbols).

    The caller has checked that the 16 counts and all symbols lie inside the segment.
    Returns the table status (``TABLE_OK`` or the reason it is unusable).
    """
    lut[slot, :] = 0
    fast[slot, :] = 0
    maxcode[slot, :] = -1
    valoff[slot, :] = 0
    vals[slot, :] = 0
    state = TABLE_OK
    code = 0
    p = 0
    sym_pos = start + 16
    for length in range(1, 17):
        count = np.int64(data[start + length - 1])
        if count > 0:
            valoff[slot, length] = p - code
            for _ in range(count):
                sym = np.int64(data[sym_pos + p])
                vals[slot, p] = sym
                if is_dc and sym > 15:
                    state = TABLE_BAD_DC_SYMBOL
                if length <= FAST_BITS and code < (1 << length):
                    _fill_fast(slot, is_dc, code, length, sym, lut, fast)
                code += 1
                p += 1
            maxcode[slot, length] = code - 1
            if code >= (1 << length) and state == TABLE_OK:
                state = TABLE_OVERSUBSCRIBED
        code <<= 1
    maxcode[slot, 17] = 0x7FFFFFFF
    status[slot] = state
    return state


@njit(nogil=True, cache=True)
def _fill_fast(slot, is_dc, code, length, sym, lut, fast):
    shift = FAST_BITS - length
    first = code << shift
    size = sym & 15
    run = 0 if is_dc else sym >> 4
    combine = (is_dc or size > 0) and length + size <= FAST_BITS
    for j in range(1 << shift):
        lut[slot, first + j] = (length << 8) | sym
        if combine:
            if size == 0:
                value = 0
            else:
                value = extend((j >> (shift - size)) & ((1 << size) - 1), size)
            fast[slot, first + j] = (value << 16) | (run << 8) | (length + size)


@njit(nogil=True, cache=True, inline="always")
def fill(data, pos, acc, bits, pad, mpos):
    """Top the accumulator up to at least 49 bits; return the new reader state.

    State: ``pos`` next byte to read, ``acc``/``bits`` the buffered bits, ``pad`` zero bits
    appended past the end of the data, ``mpos`` offset of the marker (its first 0xFF) that
    ended the data, or -1 while none has been met (``len(data)`` at the end of the buffer).

    The common case (no 0xFF byte, no marker, no end of data in reach) is inlined into the
    decoding loops; everything else goes to :func:`_fill_slow`.
    """
    acc &= (np.int64(1) << bits) - 1
    if mpos < 0 and pos + 8 <= data.shape[0]:
        while bits <= 48:
            byte = np.int64(data[np.uint64(pos)])  # unsigned: no negative-index wraparound
            if byte == 0xFF:
                return _fill_slow(data, pos, acc, bits, pad, mpos)
            acc = (acc << 8) | byte
            bits += 8
            pos += 1
        return pos, acc, bits, pad, mpos
    return _fill_slow(data, pos, acc, bits, pad, mpos)


@njit(nogil=True, cache=True)
def _fill_slow(data, pos, acc, bits, pad, mpos):
    """:func:`fill` byte by byte: stuffed bytes, fill bytes, markers and the end of the data."""
    n = data.shape[0]
    while bits <= 48:
        if mpos < 0:
            if pos < n:
                byte = np.int64(data[pos])
                if byte != 0xFF:
                    acc = (acc << 8) | byte
                    bits += 8
                    pos += 1
                    continue
                q = pos + 1
                while q < n and data[q] == 0xFF:
                    q += 1
                if q < n and data[q] == 0:
                    acc = (acc << 8) | 0xFF
                    bits += 8
                    pos = q + 1
                    continue
                mpos = pos
            else:
                mpos = n
        acc <<= 8
        bits += 8
        pad += 8
    return pos, acc, bits, pad, mpos


@njit(nogil=True, cache=True)
def decode_symbol(acc, bits, slot, lut, maxcode, valoff, vals):
    """Decode one Huffman symbol; needs ``bits >= 16``. Returns ``(symbol, length)``,
    or ``(-1, 0)`` when no code of up to 16 bits matches (corrupt data)."""
    entry = lut[slot, (acc >> (bits - FAST_BITS)) & FAST_MASK]
    if entry != 0:
        return entry & 255, entry >> 8
    code = (acc >> (bits - 16)) & 0xFFFF
    for length in range(FAST_BITS + 1, 17):
        c = code >> (16 - length)
        if c <= maxcode[slot, length]:
            return vals[slot, valoff[slot, length] + c], length
    return -1, 0


# --------------------------------------------------------------------------------------------
# Marker level


@njit(nogil=True, cache=True)
def _next_marker(data, pos):
    """Marker code at ``pos`` after optional 0xFF fill bytes: ``(code, next offset)``;
    code -1 if the byte at ``pos`` is not 0xFF (its value is returned instead of the offset),
    -2 if the data ends first."""
    n = data.shape[0]
    if pos >= n:
        return -2, pos
    if data[pos] != 0xFF:
        return -1, np.int64(data[pos])
    while pos < n and data[pos] == 0xFF:
        pos += 1
    if pos >= n:
        return -2, pos
    return np.int64(data[pos]), pos + 1


@njit(nogil=True, cache=True)
def _decode_jpeg(data, coef, nz, tables, max_pixels, max_scans, lenient, stop_rows):
    """Decode a whole JPEG stream into ``coef`` and ``tables``.

    ``coef`` receives every component's blocks one after the other (int16, natural order) plus
    one scratch block; ``nz`` (progressive files only) one zeroed int64 per block of ``coef``;
    ``tables`` (uint16 ``[components, 64]``) each component's quantization table. Given empty
    arrays, the walk stops at the first scan and returns ``E_NEED_BUFFER`` with the number of
    coefficients as the argument.

    Returns ``(error, argument, byte offset, scans, frame, geometry, coef, quant)``: ``frame``
    is ``(height, width, progressive)``, ``geometry`` one row per component (columns ``_G_*``),
    ``quant`` is ``tables`` once the first scan is reached.

    ``lenient``: None decodes strictly; True recovers from corrupt data as libjpeg does. None
    rather than False, so that Numba compiles the strict specialisation with every lenient
    branch pruned (``lenient is None`` is a constant for a None-typed argument): the strict
    loops are the ones without the recovery code.

    ``stop_rows`` >= 0: in a sequential file whose one scan codes every component, stop after
    the MCU row that completes luma block row ``stop_rows - 1`` and return; blocks below stay
    as they are and the rest of the stream is not read. Other files, -1, and rows that reach
    the last MCU row decode (and check) the whole stream.
    """
    n = data.shape[0]
    zz = _ZZ
    probe = coef.shape[0] == 0  # only the frame is wanted: table segments are skipped
    status, lut, fast, maxcode, valoff, vals = _new_tables(0 if probe else NUM_SLOTS)
    qt = np.zeros((4, 64), dtype=np.int64)
    qt_defined = np.zeros(4, dtype=np.bool_)
    frame = np.zeros(3, dtype=np.int64)
    sof = np.zeros((4, 4), dtype=np.int64)  # id, h, v, Tq of each frame component
    geometry = np.zeros((0, 7), dtype=np.int64)
    quant = np.zeros((0, 64), dtype=np.uint16)
    latched = np.zeros(3, dtype=np.bool_)
    coef_bits = np.full((3, 64), -1, dtype=np.int64)
    err = OK
    arg = np.int64(0)
    scans = np.int64(0)
    restart = np.int64(0)
    adobe = np.int64(-1)
    ncomp = np.int64(0)
    precision = np.int64(0)
    seen_sof = False
    single_scan = False
    mcus_x = np.int64(0)
    mcus_y = np.int64(0)
    if n < 2 or data[0] != 0xFF or data[1] != 0xD8:
        return E_NOT_JPEG, arg, np.int64(0), scans, frame, geometry, coef, quant
    pos = np.int64(2)
    code = np.int64(-3)  # -3: no marker read yet
    while True:
        if code == -3:
            code, nxt = _next_marker(data, pos)
            if code == -2:
                err = E_TRUNCATED
                pos = n
                break
            if code == -1 or code == 0:
                if lenient is None:
                    err = E_NO_MARKER
                    arg = nxt if code == -1 else 0
                    break
                # libjpeg's next_marker: skip bytes (and stuffed FF 00) up to the next marker.
                code, mark, nxt = _find_marker(data, pos)
                if code < 0:
                    err = E_TRUNCATED
                    pos = n
                    break
            pos = nxt
        if code == 0xD9:  # EOI
            if scans == 0:
                err = E_NO_SCAN
            for ci in range(geometry.shape[0]):  # components no scan coded: last definition
                if not latched[ci]:
                    tid = geometry[ci, _G_TQ]
                    if not qt_defined[tid]:
                        err = E_NO_QUANT_TABLE
                        arg = tid
                        break
                    for k in range(64):
                        quant[ci, k] = qt[tid, k]
            break
        if code == 0x01 or 0xD0 <= code <= 0xD7:
            # RSTn and TEM outside a scan (a restart marker right before EOI, say): libjpeg
            # reads them as parameterless markers, without a warning.
            code = np.int64(-3)
            continue
        if code == 0xD8:
            err = E_SOI
            arg = code
            break
        if pos + 2 > n:
            err = E_SEGMENT
            arg = code
            break
        length = (np.int64(data[pos]) << 8) | np.int64(data[pos + 1])
        if length < 2 or pos + length > n:
            err = E_SEGMENT
            arg = code
            break
        body = pos + 2
        end = pos + length
        if code == 0xDA:  # SOS
            if scans == 0:
                if not seen_sof:
                    err = E_NO_FRAME
                    break
                err, arg = _check_frame(frame, sof, ncomp, precision, adobe, max_pixels)
                if err != OK:
                    break
                geometry, total = _frame_geometry(frame, sof, ncomp)
                if (coef.shape[0] != total + 64 or tables.shape[0] != ncomp
                        or (frame[2] != 0 and nz.shape[0] != coef.shape[0] // 64)):
                    err = E_NEED_BUFFER
                    arg = total
                    break
                quant = tables
                hmax = np.int64(1)
                vmax = np.int64(1)
                for i in range(ncomp):
                    hmax = max(hmax, geometry[i, _G_H])
                    vmax = max(vmax, geometry[i, _G_V])
                mcus_x = -(-frame[1] // (8 * hmax))
                mcus_y = -(-frame[0] // (8 * vmax))
            if single_scan:
                # libjpeg: a sequential file whose first scan codes every component has one
                # scan ("Didn't expect more than one scan").
                err = E_EXTRA_SCAN
                break
            scans += 1
            if scans > max_scans:
                err = E_TOO_MANY_SCANS
                break
            err, arg, comps, kind, ss, se, al, sx, sy = _scan_header(
                data, body, end, geometry, frame[2] != 0, status, qt_defined, coef_bits,
                mcus_x, mcus_y, lenient)
            if err != OK:
                pos = body
                break
            single_scan = scans == 1 and frame[2] == 0 and comps.shape[0] == ncomp
            for j in range(comps.shape[0]):  # latch tables as libjpeg does
                ci = comps[j, _C_INDEX]
                if not latched[ci]:
                    for k in range(64):
                        quant[ci, k] = qt[geometry[ci, _G_TQ], k]
                    latched[ci] = True
            scratch = coef.shape[0] - 64
            if kind == _SEQUENTIAL:
                partial = False
                if single_scan and 0 <= stop_rows:  # MCU rows (luma blocks in a one-component scan)
                    per_row = geometry[0, _G_V] if ncomp > 1 else np.int64(1)
                    partial = -(-stop_rows // per_row) < sy
                    if partial:
                        sy = -(-stop_rows // per_row)
                err, code, pos = _sequential_scan(data, end, coef, comps, sx, sy, restart,
                                                  scratch, lut, fast, maxcode, valoff, vals,
                                                  _ZZ_U, lenient, partial)
                if partial and err == OK:
                    break
            else:
                err, code, pos = _progressive_scan(data, end, coef, nz, comps, sx, sy, restart,
                                                   scratch, kind, ss, se, al, lut, fast,
                                                   maxcode, valoff, vals, zz, lenient)
            if err != OK:
                arg = code
                break
            continue  # ``code`` is the marker after the scan, ``pos`` the offset after it
        if code == 0xC4:  # DHT
            if not probe:
                err, pos = _parse_dht(data, body, end, status, lut, fast, maxcode, valoff, vals,
                                      lenient)
                if err != OK:
                    break
        elif code == 0xDB:  # DQT
            if not probe:
                err, pos = _parse_dqt(data, body, end, qt, qt_defined, zz, lenient)
                if err != OK:
                    break
        elif code == 0xDD:  # DRI
            if length != 4:
                err = E_DRI
                break
            restart = (np.int64(data[body]) << 8) | np.int64(data[body + 1])
        elif 0xC0 <= code <= 0xCF and code != 0xC4 and code != 0xC8 and code != 0xCC:
            if seen_sof or scans > 0:
                err = E_SOF
                break
            if code != 0xC0 and code != 0xC1 and code != 0xC2:
                err = E_UNSUPPORTED_SOF
                arg = code
                break
            seen_sof = True
            if length < 8:
                err = E_FRAME
                break
            precision = np.int64(data[body])
            frame[0] = (np.int64(data[body + 1]) << 8) | np.int64(data[body + 2])
            frame[1] = (np.int64(data[body + 3]) << 8) | np.int64(data[body + 4])
            frame[2] = 1 if code == 0xC2 else 0
            ncomp = np.int64(data[body + 5])
            if length != 8 + 3 * ncomp:
                err = E_FRAME
                break
            for i in range(min(ncomp, 4)):
                sof[i, 0] = data[body + 6 + 3 * i]
                sof[i, 1] = data[body + 7 + 3 * i] >> 4
                sof[i, 2] = data[body + 7 + 3 * i] & 15
                sof[i, 3] = data[body + 8 + 3 * i]
        elif code == 0xDC:
            pass  # DNL: libjpeg skips the segment (a zero frame height is refused at the scan)
        elif code == 0xEE:  # APP14: the Adobe colour transform, before the first scan
            if (scans == 0 and length >= 14 and data[body] == 0x41 and data[body + 1] == 0x64
                    and data[body + 2] == 0x6F and data[body + 3] == 0x62
                    and data[body + 4] == 0x65):
                adobe = np.int64(data[body + 11])
        elif not (0xE0 <= code <= 0xEF or code == 0xFE or code == 0xCC):  # 0xCC: DAC, skipped
            err = E_UNKNOWN_MARKER
            arg = code
            break
        pos = end
        code = np.int64(-3)
    return err, arg, pos, scans, frame, geometry, coef, quant


@njit(nogil=True, cache=True)
def _check_frame(frame, sof, ncomp, precision, adobe, max_pixels):
    """The frame checks of ``parse_header`` (made at the first scan, when APP14 is known)."""
    if precision != 8:
        return E_PRECISION, precision
    if frame[0] == 0 or frame[1] == 0 or frame[0] * frame[1] > max_pixels:
        return E_SIZE, np.int64(0)
    if ncomp != 1 and ncomp != 3:
        return E_COMPONENTS, ncomp
    for i in range(ncomp):
        for j in range(i):
            if sof[i, 0] == sof[j, 0]:
                return E_FRAME, np.int64(0)
    if ncomp == 3 and (adobe == 0 or (adobe < 0 and sof[0, 0] == 82 and sof[1, 0] == 71
                                      and sof[2, 0] == 66)):
        return E_RGB, np.int64(0)
    hmax = np.int64(1)
    vmax = np.int64(1)
    for i in range(ncomp):
        if not (1 <= sof[i, 1] <= 4 and 1 <= sof[i, 2] <= 4):
            return E_SAMPLING, np.int64(0)
        if sof[i, 3] > 3:
            return E_FRAME, np.int64(0)
        hmax = max(hmax, sof[i, 1])
        vmax = max(vmax, sof[i, 2])
    for i in range(ncomp):
        if hmax % sof[i, 1] != 0 or vmax % sof[i, 2] != 0:
            return E_SAMPLING, np.int64(0)
    if ncomp == 3 and (sof[1, 1] != sof[2, 1] or sof[1, 2] != sof[2, 2]):
        return E_SAMPLING, np.int64(0)
    return OK, np.int64(0)


@njit(nogil=True, cache=True)
def _frame_geometry(frame, sof, ncomp):
    """Per-component geometry (columns ``_G_*``) and the total number of coefficients."""
    geometry = np.zeros((ncomp, 7), dtype=np.int64)
    hmax = np.int64(1)
    vmax = np.int64(1)
    for i in range(ncomp):
        hmax = max(hmax, sof[i, 1])
        vmax = max(vmax, sof[i, 2])
    offset = np.int64(0)
    for i in range(ncomp):
        # libjpeg: ceil(ceil(size * samp / max) / 8) blocks.
        rows = -(-frame[0] * sof[i, 2] // (vmax * 8))
        cols = -(-frame[1] * sof[i, 1] // (hmax * 8))
        geometry[i, _G_ID] = sof[i, 0]
        geometry[i, _G_H] = sof[i, 1]
        geometry[i, _G_V] = sof[i, 2]
        geometry[i, _G_BW] = cols
        geometry[i, _G_BH] = rows
        geometry[i, _G_OFF] = offset
        geometry[i, _G_TQ] = sof[i, 3]
        offset += rows * cols * 64
    return geometry, offset


@njit(nogil=True, cache=True)
def _parse_dht(data, body, end, status, lut, fast, maxcode, valoff, vals, lenient):
    """Build the tables of a DHT segment; invalid tables are rejected here, as by parse_header."""
    p = body
    while p < end:
        if end - p < 17:
            return E_DHT, p
        index = np.int64(data[p])
        if (index >> 4) > 1 or (index & 15) > 3:
            return E_DHT, p
        count = np.int64(0)
        for i in range(16):
            count += np.int64(data[p + 1 + i])
        if count > 256 or count > end - p - 17:
            return E_DHT, p
        is_dc = (index >> 4) == 0
        slot = (index & 15) + (0 if is_dc else 4)
        state = build_table(data, p + 1, slot, is_dc, status, lut, fast, maxcode, valoff, vals)
        if state != TABLE_OK and lenient is None:  # lenient: refused when a scan uses it, as libjpeg
            return E_BAD_HUFF_TABLE if state == TABLE_OVERSUBSCRIBED else E_BAD_DC_SYMBOL, p
        p += 17 + count
    return OK, p


@njit(nogil=True, cache=True)
def _parse_dqt(data, body, end, qt, qt_defined, zz, lenient):
    p = body
    while p < end:
        prec = np.int64(data[p]) >> 4
        tid = np.int64(data[p]) & 15
        size = 64 * (prec + 1)
        if prec > 1 or tid > 3 or p + 1 + size > end:
            return E_DQT, p
        for i in range(64):
            if prec:
                v = (np.int64(data[p + 1 + 2 * i]) << 8) | np.int64(data[p + 2 + 2 * i])
            else:
                v = np.int64(data[p + 1 + i])
            if v == 0 and lenient is None:  # libjpeg accepts a zero quantizer silently
                return E_DQT_ZERO, p
            qt[tid, zz[i]] = v
        qt_defined[tid] = True
        p += 1 + size
    return OK, p


@njit(nogil=True, cache=True)
def _scan_header(data, body, end, geometry, progressive, status, qt_defined, coef_bits,
                 mcus_x, mcus_y, lenient):
    """Parse and validate an SOS header at ``data[body:end]`` as libjpeg and parse_header do.

    Returns ``(error, argument, components, kind, Ss, Se, Al, MCUs across, MCUs down)``;
    ``components`` has one row per scan component (columns ``_C_*``).
    """
    ncomp = geometry.shape[0]
    ns = np.int64(data[body]) if end > body else np.int64(0)
    comps = np.zeros((max(min(ns, 4), 1), 8), dtype=np.int64)
    zero = np.int64(0)
    if ns < 1 or ns > 4 or end - body != 4 + 2 * ns:
        return E_SOS_LENGTH, zero, comps, zero, zero, zero, zero, zero, zero
    blocks = np.int64(0)
    for j in range(ns):
        cid = np.int64(data[body + 1 + 2 * j])
        tables = np.int64(data[body + 2 + 2 * j])
        index = -1
        for i in range(ncomp):
            if geometry[i, _G_ID] == cid:
                index = i
        if index < 0:
            return E_SOS_COMPONENT, cid, comps, zero, zero, zero, zero, zero, zero
        for i in range(j):
            if comps[i, _C_INDEX] == index and lenient is None:  # libjpeg 6b does not check
                return E_SOS_DUPLICATE, cid, comps, zero, zero, zero, zero, zero, zero
        if not qt_defined[geometry[index, _G_TQ]]:
            return (E_NO_QUANT_TABLE, geometry[index, _G_TQ], comps, zero, zero, zero, zero,
                    zero, zero)
        comps[j, _C_INDEX] = index
        comps[j, _C_H] = geometry[index, _G_H] if ns > 1 else 1
        comps[j, _C_V] = geometry[index, _G_V] if ns > 1 else 1
        comps[j, _C_BW] = geometry[index, _G_BW]
        comps[j, _C_BH] = geometry[index, _G_BH]
        comps[j, _C_OFF] = geometry[index, _G_OFF]
        comps[j, _C_DC] = tables >> 4
        comps[j, _C_AC] = (tables & 15) + 4
        blocks += comps[j, _C_H] * comps[j, _C_V]
    p = body + 1 + 2 * ns
    ss = np.int64(data[p])
    se = np.int64(data[p + 1])
    ah = np.int64(data[p + 2]) >> 4
    al = np.int64(data[p + 2]) & 15
    if blocks > 10:
        return E_MCU_SIZE, zero, comps, zero, zero, zero, zero, zero, zero
    if ns == 1:
        # A non-interleaved scan's MCU is one block; it covers only the component's blocks.
        mcus_x = comps[0, _C_BW]
        mcus_y = comps[0, _C_BH]
    if not progressive:
        if (ss != 0 or se != 63 or ah != 0 or al != 0) and lenient is None:
            return E_NOT_SEQUENTIAL, zero, comps, zero, zero, zero, zero, zero, zero
        kind = _SEQUENTIAL
    else:
        bad = ss > se or se > 63 or al > 13 or (ah != 0 and al != ah - 1)
        bad = bad or (ss == 0 and se != 0) or (ss > 0 and ns != 1)
        if bad:
            return E_BAD_PROGRESSION, zero, comps, zero, zero, zero, zero, zero, zero
        if ss == 0:
            kind = _DC_FIRST if ah == 0 else _DC_REFINE
        else:
            kind = _AC_FIRST if ah == 0 else _AC_REFINE
        for j in range(ns):
            ci = comps[j, _C_INDEX]
            if ss > 0 and coef_bits[ci, 0] < 0 and lenient is None:
                return E_BOGUS_PROGRESSION, zero, comps, zero, zero, zero, zero, zero, zero
            for k in range(ss, se + 1):
                expected = max(coef_bits[ci, k], 0)
                if ah != expected and lenient is None:
                    return E_BOGUS_PROGRESSION, zero, comps, zero, zero, zero, zero, zero, zero
    for j in range(ns):
        # Table selectors above 3 name no table; only the tables this kind of scan reads count.
        dc_table = comps[j, _C_DC]
        ac_table = comps[j, _C_AC]
        if kind == _SEQUENTIAL or kind == _DC_FIRST:
            if dc_table > 3 or status[dc_table] != TABLE_OK:
                return E_NO_HUFF_TABLE, zero, comps, zero, zero, zero, zero, zero, zero
        else:
            comps[j, _C_DC] = 0
        if kind == _SEQUENTIAL or kind == _AC_FIRST or kind == _AC_REFINE:
            if ac_table > 7 or status[ac_table] != TABLE_OK:
                return E_NO_HUFF_TABLE, zero, comps, zero, zero, zero, zero, zero, zero
        else:
            comps[j, _C_AC] = 4
    if progressive:
        for j in range(ns):
            for k in range(ss, se + 1):
                coef_bits[comps[j, _C_INDEX], k] = al
    return OK, zero, comps, np.int64(kind), ss, se, al, mcus_x, mcus_y


# --------------------------------------------------------------------------------------------
# Entropy-coded data


@njit(nogil=True, cache=True)
def _end_of_interval(data, pos, bits, pad, mpos):
    """After the last MCU of a scan or restart interval: check that only padding bits remain
    before the next marker; return ``(error, marker code, offset after the marker)``."""
    n = data.shape[0]
    if bits - pad >= 8:
        return E_EXTRANEOUS, np.int64(0), pos
    if mpos < 0:
        mpos = pos
    if mpos >= n:
        return E_TRUNCATED, np.int64(0), n
    if data[mpos] != 0xFF:
        return E_EXTRANEOUS, np.int64(0), mpos
    q = mpos
    while q < n and data[q] == 0xFF:
        q += 1
    if q >= n:
        return E_TRUNCATED, np.int64(0), n
    if data[q] == 0:
        return E_EXTRANEOUS, np.int64(0), mpos
    return OK, np.int64(data[q]), q + 1


@njit(nogil=True, cache=True)
def _find_marker(data, p):
    """libjpeg's ``next_marker`` from offset ``p``: skip other bytes and stuffed FF 00 pairs up
    to the next marker; return ``(code, offset of its first 0xFF, offset after it)``, code -2
    when the data ends first."""
    n = data.shape[0]
    while True:
        while p < n and data[p] != 0xFF:
            p += 1
        q = p
        while q < n and data[q] == 0xFF:
            q += 1
        if q >= n:
            return np.int64(-2), n, n
        if data[q] != 0:
            return np.int64(data[q]), p, q + 1
        p = q + 1


@njit(nogil=True, cache=True)
def _after_scan(data, pos, mpos):
    """Lenient end of a scan: the next marker, whatever lies before it (libjpeg warns about
    extraneous bytes and skips them); returns as :func:`_end_of_interval`."""
    code, mark, after = _find_marker(data, mpos if mpos >= 0 else pos)
    if code < 0:
        return E_TRUNCATED, np.int64(0), data.shape[0]
    return OK, code, after


@njit(nogil=True, cache=True)
def _resync(data, pos, mpos, rst):
    """Lenient restart, as libjpeg's ``read_restart_marker`` and ``jpeg_resync_to_restart``.

    Takes the marker the reader met (``mpos``) or the next one after ``pos``. RST``rst``, or a
    restart marker too far from it, is consumed; one of the next two restart markers or any
    other marker from SOF0 up is left unread (the interval decodes as empty data); an earlier
    restart marker or an invalid marker is skipped, and the decision repeats on the next one.
    Returns ``(error, offset, mpos)``: ``mpos`` is the offset of a marker left unread, or -1.
    """
    code, mark, after = _find_marker(data, mpos if mpos >= 0 else pos)
    while True:
        if code < 0:
            return E_TRUNCATED, data.shape[0], np.int64(-1)
        if code == 0xD0 + rst:
            return OK, after, np.int64(-1)
        if code < 0xC0:
            action = 2
        elif code < 0xD0 or code > 0xD7:
            action = 3
        elif code == 0xD0 + ((rst + 1) & 7) or code == 0xD0 + ((rst + 2) & 7):
            action = 3
        elif code == 0xD0 + ((rst - 1) & 7) or code == 0xD0 + ((rst - 2) & 7):
            action = 2
        else:
            action = 1
        if action == 1:
            return OK, after, np.int64(-1)
        if action == 3:
            return OK, mark, mark
        code, mark, after = _find_marker(data, after)


@njit(nogil=True, cache=True)
def _next_interval(data, pos, bits, pad, mpos, rst, lenient):
    """Past the marker that ends restart interval ``rst``: strictly the RSTn that must come
    (:func:`_restart`), leniently as libjpeg resynchronises (:func:`_resync`). Returns
    ``(error, argument, offset, mpos)``, ``mpos`` being the offset of a marker left unread or -1.
    Runs once per interval, so the scan loops lose nothing by calling it."""
    if lenient is not None:
        err, pos, mpos = _resync(data, pos, mpos, rst)
        return err, rst, pos, mpos
    err, arg, pos = _restart(data, pos, bits, pad, mpos, rst)
    return err, arg, pos, np.int64(-1)


@njit(nogil=True, cache=True)
def _bad_code(bits, pad):
    """An undecodable bit pattern is reported as such, unless the 16 bits looked at reach past
    the end of the data (into the zero bits appended there): then the data ran out."""
    return E_DATA_EXHAUSTED if bits - pad < 16 else E_BAD_CODE


@njit(nogil=True, cache=True)
def _restart(data, pos, bits, pad, mpos, rst):
    """Consume the RSTn marker that must end a restart interval; ``(error, argument, offset)``."""
    err, code, pos = _end_of_interval(data, pos, bits, pad, mpos)
    if err != OK:
        return err, np.int64(0), pos
    if code != 0xD0 + rst:
        return (E_RST_SEQUENCE if 0xD0 <= code <= 0xD7 else E_RST_MISSING), rst, pos
    return OK, rst, pos


@njit(nogil=True, cache=True)
def _sequential_scan(data, pos, coef, comps, mcus_x, mcus_y, restart, scratch,
                     lut, fast, maxcode, valoff, vals, zz, lenient, partial):
    """Decode one baseline/extended sequential scan (T.81 Annex F) into ``coef``.

    ``partial``: ``mcus_y`` is fewer MCU rows than the scan has; return OK after them, without
    looking for the end of the scan.

    Returns ``(error, next marker code or error argument, offset)``.
    """
    ns = comps.shape[0]
    acc = np.int64(0)
    bits = np.int64(0)
    pad = np.int64(0)
    mpos = np.int64(-1)
    insufficient = False
    pred = np.zeros(4, dtype=np.int64)
    togo = restart
    rst = np.int64(0)
    for my in range(mcus_y):
        for mx in range(mcus_x):
            if restart > 0:
                if togo == 0:
                    err, arg, pos, mpos = _next_interval(data, pos, bits, pad, mpos, rst, lenient)
                    if err != OK:
                        return err, arg, pos
                    if mpos < 0:
                        insufficient = False
                    rst = (rst + 1) & 7
                    acc = np.int64(0)
                    bits = np.int64(0)
                    pad = np.int64(0)
                    pred[:] = 0
                    togo = restart
                togo -= 1
            if lenient is not None:
                if insufficient:
                    continue  # libjpeg leaves the rest of a segment that ran out of data alone
            for ci in range(ns):
                dct = comps[ci, _C_DC]
                act = comps[ci, _C_AC]
                h = comps[ci, _C_H]
                v = comps[ci, _C_V]
                bw = comps[ci, _C_BW]
                bh = comps[ci, _C_BH]
                for y in range(v):
                    by = my * v + y
                    for x in range(h):
                        bx = mx * h + x
                        if by < bh and bx < bw:
                            idx = np.uint64(comps[ci, _C_OFF] + (by * bw + bx) * 64)
                        else:
                            idx = np.uint64(scratch)
                        # DC coefficient: difference from the previous block's.
                        if bits < 31:
                            pos, acc, bits, pad, mpos = fill(data, pos, acc, bits, pad, mpos)
                        entry = fast[dct, (acc >> (bits - FAST_BITS)) & FAST_MASK]
                        if entry != 0:
                            bits -= entry & 255
                            diff = np.int64(entry >> 16)
                        else:
                            sym, length = decode_symbol(acc, bits, dct, lut, maxcode, valoff,
                                                        vals)
                            if sym < 0:
                                if lenient is None:
                                    return _bad_code(bits, pad), np.int64(0), pos
                                sym, length = 0, 17  # libjpeg: 17 bits read, symbol 0
                            bits -= length
                            diff = np.int64(0)
                            if sym != 0:
                                diff = extend((acc >> (bits - sym)) & ((1 << sym) - 1), sym)
                                bits -= sym
                        pred[ci] += diff
                        coef[idx] = pred[ci]
                        # AC coefficients: run-length/size symbols, zeros are skipped.
                        k = 1
                        while k < 64:
                            # A combined lookup takes at most FAST_BITS bits, so 18 bits allow
                            # two in a row; the rare longer symbol (code and magnitude, up to 31
                            # bits) tops up again below.
                            if bits < 2 * FAST_BITS:
                                pos, acc, bits, pad, mpos = fill(data, pos, acc, bits, pad, mpos)
                            entry = fast[act, (acc >> (bits - FAST_BITS)) & FAST_MASK]
                            if entry != 0:
                                bits -= entry & 255
                                k += (entry >> 8) & 255
                                if k > 63:
                                    if lenient is None:
                                        return E_COEF_OVERFLOW, np.int64(0), pos
                                    coef[idx + zz[63]] = entry >> 16  # libjpeg: position 63
                                    break
                                coef[idx + zz[k]] = entry >> 16  # unsigned index: no wraparound
                                k += 1
                                if k == 64:
                                    break
                                entry = fast[act, (acc >> (bits - FAST_BITS)) & FAST_MASK]
                                if entry == 0:
                                    continue
                                bits -= entry & 255
                                k += (entry >> 8) & 255
                                if k > 63:
                                    if lenient is None:
                                        return E_COEF_OVERFLOW, np.int64(0), pos
                                    coef[idx + zz[63]] = entry >> 16
                                    break
                                coef[idx + zz[k]] = entry >> 16
                                k += 1
                                continue
                            if bits < 31:
                                pos, acc, bits, pad, mpos = fill(data, pos, acc, bits, pad, mpos)
                            sym, length = decode_symbol(acc, bits, act, lut, maxcode, valoff,
                                                        vals)
                            if sym < 0:
                                if lenient is None:
                                    return _bad_code(bits, pad), np.int64(0), pos
                                sym, length = 0, 17  # libjpeg: 17 bits read, symbol 0
                            bits -= length
                            r = sym >> 4
                            s = sym & 15
                            if s == 0:
                                if r == 0:
                                    break
                                if r != 15:
                                    if lenient is None:
                                        return E_BAD_SYMBOL, np.int64(sym), pos
                                    break  # libjpeg ends the block
                                k += 16
                                if k > 63:
                                    if lenient is None:
                                        return E_COEF_OVERFLOW, np.int64(0), pos
                                    break
                                continue
                            k += r
                            if k > 63:
                                if lenient is None:
                                    return E_COEF_OVERFLOW, np.int64(0), pos
                                k = 63  # libjpeg's padded natural order writes position 63
                            coef[idx + zz[k]] = extend((acc >> (bits - s)) & ((1 << s) - 1), s)
                            bits -= s
                            k += 1
                        if bits < pad:
                            if lenient is None:
                                return E_DATA_EXHAUSTED, np.int64(0), pos
                            insufficient = True
    if partial:
        return OK, np.int64(0), pos
    if lenient is not None:
        return _after_scan(data, pos, mpos)
    return _end_of_interval(data, pos, bits, pad, mpos)


@njit(nogil=True, cache=True)
def _progressive_scan(data, pos, coef, nz, comps, mcus_x, mcus_y, restart, scratch, kind,
                      ss, se, al, lut, fast, maxcode, valoff, vals, zz, lenient):
    """Decode one progressive scan (T.81 Annex G) into ``coef``, in the order of libjpeg's
    ``jdphuff.c``; returns as :func:`_sequential_scan`.

    ``nz`` holds one int64 per block (index ``offset // 64``) with bit k set where the block's
    zigzag coefficient k (k >= 1) is nonzero, so that refinement scans visit only those.
    """
    ns = comps.shape[0]
    acc = np.int64(0)
    bits = np.int64(0)
    pad = np.int64(0)
    mpos = np.int64(-1)
    insufficient = False
    pred = np.zeros(4, dtype=np.int64)
    eobrun = np.int64(0)
    p1 = np.int64(1) << al
    m1 = np.int64(-1) << al
    togo = restart
    rst = np.int64(0)
    for my in range(mcus_y):
        for mx in range(mcus_x):
            if restart > 0:
                if togo == 0:
                    err, arg, pos, mpos = _next_interval(data, pos, bits, pad, mpos, rst, lenient)
                    if err != OK:
                        return err, arg, pos
                    if mpos < 0:
                        insufficient = False
                    rst = (rst + 1) & 7
                    acc = np.int64(0)
                    bits = np.int64(0)
                    pad = np.int64(0)
                    pred[:] = 0
                    eobrun = np.int64(0)
                    togo = restart
                togo -= 1
            if lenient is not None:
                if insufficient:
                    continue  # libjpeg leaves the rest of a segment that ran out of data alone
            for ci in range(ns):
                dct = comps[ci, _C_DC]
                act = comps[ci, _C_AC]
                h = comps[ci, _C_H]
                v = comps[ci, _C_V]
                bw = comps[ci, _C_BW]
                bh = comps[ci, _C_BH]
                for y in range(v):
                    by = my * v + y
                    for x in range(h):
                        bx = mx * h + x
                        if by < bh and bx < bw:
                            idx = comps[ci, _C_OFF] + (by * bw + bx) * 64
                        else:
                            idx = scratch
                        if kind == _AC_FIRST:
                            if eobrun > 0:
                                eobrun -= 1
                                continue
                            k = ss
                            while k <= se:
                                if bits < 31:
                                    pos, acc, bits, pad, mpos = fill(data, pos, acc, bits, pad,
                                                                     mpos)
                                entry = fast[act, (acc >> (bits - FAST_BITS)) & FAST_MASK]
                                if entry != 0:
                                    bits -= entry & 255
                                    k += (entry >> 8) & 255
                                    if k > se:
                                        if lenient is None:
                                            return E_COEF_OVERFLOW, np.int64(0), pos
                                        k = min(k, np.int64(63))  # libjpeg writes, then stops
                                        at = idx + zz[k]
                                        coef[at] = (entry >> 16) << al
                                        if coef[at] != 0:
                                            nz[idx >> 6] |= np.int64(1) << k
                                        break
                                    at = idx + zz[k]
                                    coef[at] = (entry >> 16) << al
                                    if coef[at] != 0:
                                        nz[idx >> 6] |= np.int64(1) << k
                                    k += 1
                                    continue
                                sym, length = decode_symbol(acc, bits, act, lut, maxcode, valoff,
                                                            vals)
                                if sym < 0:
                                    if lenient is None:
                                        return _bad_code(bits, pad), np.int64(0), pos
                                    sym, length = 0, 17
                                bits -= length
                                r = sym >> 4
                                s = sym & 15
                                if s == 0:
                                    if r == 15:
                                        k += 16
                                        if k > se:
                                            if lenient is None:
                                                return E_COEF_OVERFLOW, np.int64(0), pos
                                            break
                                        continue
                                    eobrun = np.int64(1) << r
                                    if r > 0:
                                        eobrun += (acc >> (bits - r)) & ((1 << r) - 1)
                                        bits -= r
                                    eobrun -= 1
                                    break
                                k += r
                                if k > se:
                                    if lenient is None:
                                        return E_COEF_OVERFLOW, np.int64(0), pos
                                    k = min(k, np.int64(63))  # written there; the band ends
                                value = extend((acc >> (bits - s)) & ((1 << s) - 1), s)
                                bits -= s
                                at = idx + zz[k]
                                coef[at] = value << al
                                if coef[at] != 0:
                                    nz[idx >> 6] |= np.int64(1) << k
                                k += 1
                        elif kind == _AC_REFINE:
                            # T.81 G.1.2.3, in the order of libjpeg's decode_mcu_AC_refine
                            # (inline: a call per block would cost more than the block).
                            # ``mask`` has bit k set where zigzag coefficient k is nonzero.
                            mask = nz[idx >> 6]
                            k = ss
                            if eobrun == 0:
                                while k <= se:
                                    if bits < 31:
                                        pos, acc, bits, pad, mpos = fill(data, pos, acc, bits,
                                                                         pad, mpos)
                                    sym, length = decode_symbol(acc, bits, act, lut, maxcode,
                                                                valoff, vals)
                                    if sym < 0:
                                        if lenient is None:
                                            return _bad_code(bits, pad), np.int64(0), pos
                                        sym, length = 0, 17
                                    bits -= length
                                    r = sym >> 4
                                    s = sym & 15
                                    value = np.int64(0)
                                    if s != 0:
                                        if s != 1 and lenient is None:
                                            return E_REFINE_SIZE, np.int64(0), pos
                                        bits -= 1
                                        value = p1 if (acc >> bits) & 1 else m1
                                    elif r != 15:
                                        eobrun = np.int64(1) << r
                                        if r > 0:
                                            eobrun += (acc >> (bits - r)) & ((1 << r) - 1)
                                            bits -= r
                                        break
                                    # Skip r zero coefficients and stop on the next zero,
                                    # appending a correction bit to each nonzero one passed
                                    # (in zigzag order): the target is the (r+1)-th zero bit
                                    # of the band from k.
                                    zeros = ~mask & (np.int64(-1) << k)
                                    if se < 63:
                                        zeros &= ~(np.int64(-1) << (se + 1))
                                    for _ in range(r):
                                        if zeros == 0:
                                            break
                                        zeros ^= np.int64(1) << _lowest_bit(zeros)
                                    if zeros != 0:
                                        target = _lowest_bit(zeros)
                                        passed = mask & (np.int64(-1) << k) & ~(np.int64(-1) << target)
                                    else:
                                        # Too few zeros left in the band: libjpeg corrects every
                                        # nonzero coefficient up to Se and writes a new one
                                        # just past Se (position 63 at most).
                                        if lenient is None:
                                            return E_COEF_OVERFLOW, np.int64(0), pos
                                        target = se + 1
                                        passed = mask & (np.int64(-1) << k)
                                        if target < 64:
                                            passed &= ~(np.int64(-1) << target)
                                    while passed != 0:
                                        j = _lowest_bit(passed)
                                        passed ^= np.int64(1) << j
                                        at = idx + zz[j]
                                        c = np.int64(coef[at])
                                        if bits < 1:
                                            pos, acc, bits, pad, mpos = fill(data, pos, acc, bits,
                                                                             pad, mpos)
                                        bits -= 1
                                        if (acc >> bits) & 1 and (c & p1) == 0:
                                            coef[at] = c + p1 if c >= 0 else c + m1
                                    k = target
                                    if value != 0:
                                        if k > 63:  # lenient only: past a band ending at 63
                                            k = 63
                                        coef[idx + zz[k]] = value
                                        mask |= np.int64(1) << k
                                    k += 1
                            if eobrun > 0:
                                # The rest of the band is in an EOB run: a correction bit for
                                # each nonzero coefficient in zigzag positions k..Se.
                                rest = mask & (np.int64(-1) << k)
                                if se < 63:
                                    rest &= ~(np.int64(-1) << (se + 1))
                                while rest != 0:
                                    j = _lowest_bit(rest)
                                    rest ^= np.int64(1) << j
                                    at = idx + zz[j]
                                    c = np.int64(coef[at])
                                    if bits < 1:
                                        pos, acc, bits, pad, mpos = fill(data, pos, acc, bits,
                                                                         pad, mpos)
                                    bits -= 1
                                    if (acc >> bits) & 1 and (c & p1) == 0:
                                        coef[at] = c + p1 if c >= 0 else c + m1
                                eobrun -= 1
                            nz[idx >> 6] = mask
                        elif kind == _DC_FIRST:
                            if bits < 31:
                                pos, acc, bits, pad, mpos = fill(data, pos, acc, bits, pad, mpos)
                            sym, length = decode_symbol(acc, bits, dct, lut, maxcode, valoff,
                                                        vals)
                            if sym < 0:
                                if lenient is None:
                                    return _bad_code(bits, pad), np.int64(0), pos
                                sym, length = 0, 17  # libjpeg: 17 bits read, symbol 0
                            bits -= length
                            if sym != 0:
                                pred[ci] += extend((acc >> (bits - sym)) & ((1 << sym) - 1), sym)
                                bits -= sym
                            coef[idx] = pred[ci] << al
                        else:  # DC refinement: one bit per block
                            if bits < 1:
                                pos, acc, bits, pad, mpos = fill(data, pos, acc, bits, pad, mpos)
                            bits -= 1
                            if (acc >> bits) & 1:
                                coef[idx] |= p1
                        if bits < pad:
                            if lenient is None:
                                return E_DATA_EXHAUSTED, np.int64(0), pos
                            insufficient = True
    if lenient is not None:
        return _after_scan(data, pos, mpos)
    return _end_of_interval(data, pos, bits, pad, mpos)
