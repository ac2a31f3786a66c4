"""Huffman tables and the bit reader of the native JPEG decoder (Numba, no Python objects).

A Huffman table (T.81 Annex C) is given by 16 code-length counts and up to 256 symbols. It is
expanded once per DHT segment into derived tables, one *slot* per table: DC tables 0..3 take
slots 0..3, AC tables 0..3 slots 4..7. For each slot:

``lut``
    ``2**FAST_BITS`` entries indexed by the next ``FAST_BITS`` bits of the stream:
    ``(code_length << 8) | symbol`` for codes of at most ``FAST_BITS`` bits, 0 for longer codes.
``fast``
    the same index, but for a symbol *and* its appended magnitude bits when both fit in
    ``FAST_BITS`` bits: ``(value << 16) | (run << 8) | total_length`` (for AC symbols with a
    nonzero size, and every DC symbol); 0 otherwise. Most coefficients of a photo decode with a
    single lookup here (the "fast AC" idea of stb_image and libjpeg-turbo).
``maxcode`` / ``valoff`` / ``vals``
    the canonical decoding tables of T.81 Figure F.16 for codes longer than ``FAST_BITS``.

The checks follow libjpeg's ``jpeg_make_d_derived_tbl``: no code may be all ones (the code space
must not overflow at any length) and DC symbols must be at most 15. A table that fails is kept
with a bad status and only rejected when a scan uses it, as libjpeg does.

The bit reader keeps up to 56 unread bits right-aligned in an int64 accumulator. Stuffed bytes
(0xFF 0x00, also after 0xFF fill bytes, as libjpeg reads them) yield 0xFF. At a marker it stops
and appends zero bits, counting them in ``pad``: a decoder may *peek* into them but has consumed
data that is not there as soon as ``bits < pad``, which the scan decoders treat as corruption.
"""

from __future__ import annotations

import numpy as np
from numba import njit

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
