"""A per-image container for hyperprior bitstreams, and ``(y_hat, sigma_hat)`` read straight from it.

:func:`~cdomain.latents.encode.compress` gives, per image, one rANS string for ``y`` and one for
``z``; decoding them needs the codec that wrote them, the shapes and the padding. This module
stores all of that in one small file (``write_bitstream``/``to_bytes``) and reads it back
(``read_bitstream``/``from_bytes``) with every field checked before anything is allocated, so a
task network can take its input from the bitstream itself (:func:`read_latents`): z is
entropy-decoded, ``h_s`` gives the scales ``sigma_hat``, y is entropy-decoded with them into
``y_hat`` -- and the synthesis transform ``g_s`` is never run.

Layout (all integers big-endian, unsigned; 52 fixed bytes, then the strings)::

    offset size field
         0    4 magic b"CDLB"
         4    1 version (1)
         5    1 architecture id: index in cdomain.latents.codecs.ARCHITECTURES
         6    1 quality 1..8 (0: not recorded, e.g. a CompressAI file loaded without one)
         7    1 flags, 0 (reserved)
         8   16 codec hash: the first 16 bytes of a SHA-256 over the codec's state dict
                (names, shapes, dtypes and values, coder tables included; see codec_hash)
        24    8 image height, width (uint32 each, 1..65536)
        32    8 y height, width; z height, width (uint16 each)
        40    8 padding left, right, top, bottom (uint16 each)
        48    4 number of strings (2)
        52      per string, y first then z: length (uint32), then that many bytes

The reader requires the padding and both latent shapes to be exactly what
:func:`~cdomain.latents.encode.pad_images` gives for the image size (centred zero padding to a
multiple of 64; y at stride 16, z at stride 64), each string to be a whole number of 32-bit
rANS words and at least the coder's 8-byte final state, the strings to fit the remaining bytes,
and nothing to follow the last string. A file therefore costs :data:`OVERHEAD` bytes more than
its strings, and its bits beyond that equal :attr:`Compressed.bits <cdomain.latents.encode.Compressed.bits>`.

Relation to CompressAI's example codec (``examples/codec.py``): the layout follows it -- a
header naming the model and quality, the original image size as two big-endian uint32, the
latent shape, the number of strings, then each string behind a big-endian uint32 length, y
before z -- but the files are not byte-compatible, in either direction. CompressAI's header is
two bytes (a model id that is the position of the model in its zoo dictionary, and metric and
quality packed into 4 bits each) that identify *published pretrained weights*; cdomain's codecs
are trained locally, so a model name and quality do not say which weights decode a file, and
decoding with any other weights silently gives wrong latents. This header therefore carries a
magic, a version and a hash of the weights, and also the padding and the y shape, which
CompressAI's decoder recomputes by its own convention. Converting between the two is a matter
of rewriting the header; the strings themselves are the same bytes.

Decoding garbage: CompressAI's rANS decoder does not check the end of its input; a damaged
string can make it read past it. :func:`read_latents` therefore hands the decoder each string
followed by zero bytes (4 per coded symbol, plus 64), which covers every read of the ordinary
decoding path, so a corrupted string decodes to wrong values of the declared shape rather than
reading foreign memory. (Escape-coded symbols, which a valid stream uses only for values
beyond the coder's table, read further bits; they are rare in garbage.)
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import torch
from torch import Tensor

from cdomain.atomic import atomic_write
from cdomain.errors import DataError
from cdomain.latents.codecs import ARCHITECTURES, codec_config
from cdomain.latents.encode import LATENT_STRIDE, PAD_MULTIPLE, Compressed, PaddedImage

MAGIC = b"CDLB"
VERSION = 1
#: The fixed part of the header (see the module docstring).
_FIXED = struct.Struct(">4sBBBB16s2I4H4HI")
_LENGTH = struct.Struct(">I")
FIXED_SIZE = _FIXED.size  # 52
#: Bytes a file holds besides its two strings: the fixed header and the two length prefixes.
OVERHEAD = FIXED_SIZE + 2 * _LENGTH.size  # 60
#: Largest image side the format accepts.
MAX_SIDE = 1 << 16
#: Upper bound on the strings' total size per padded pixel (real codecs write well under 4).
MAX_BYTES_PER_PIXEL = 16
#: Bytes of the coder's final state at the start of every rANS string.
_MIN_STRING = 8
_CHUNK = 1 << 20

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]


class BitstreamError(DataError):
    """A bitstream file (or bytes) that cannot be read, or was written by another codec."""

    def __init__(self, source: str, cause: str) -> None:
        super().__init__(source, cause)
        self.source, self.cause = source, cause

    def __str__(self) -> str:
        return f"{self.source}: {self.cause}"


@dataclass(frozen=True)
class Bitstream(PaddedImage):
    """One image's parsed container: the codec it needs, the geometry and the two strings."""

    architecture: str
    quality: int | None
    codec_hash: bytes  # 16 bytes
    image_size: tuple[int, int]  # unpadded (height, width)
    y_shape: tuple[int, int]
    z_shape: tuple[int, int]
    padding: tuple[int, int, int, int]  # (left, right, top, bottom)
    y_string: bytes
    z_string: bytes

    @property
    def bits(self) -> int:
        """Size of the two strings in bits (the file without its :data:`OVERHEAD`)."""
        return 8 * (len(self.y_string) + len(self.z_string))

    @property
    def bpp(self) -> float:
        return self.bits / self.pixels

    def compressed(self) -> Compressed:
        """A batch-of-one :class:`~cdomain.latents.encode.Compressed` with these strings."""
        return Compressed([[self.y_string], [self.z_string]], self.z_shape, self.padding, self.image_size)

    def codec_description(self) -> str:
        quality = "unrecorded" if self.quality is None else str(self.quality)
        return f"{self.architecture} quality {quality} (weights hash {self.codec_hash.hex()[:16]})"


def codec_hash(codec: torch.nn.Module) -> bytes:
    """First 16 bytes of a SHA-256 over ``codec``'s state dict, entropy coder tables included.

    Hashes names, shapes, dtypes and values in name order, as
    :func:`cdomain.latents.cache.codec_fingerprint` does, but keeps 16 bytes rather than 8.
    """
    digest = hashlib.sha256()
    for name, value in sorted(codec.state_dict().items()):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.digest()[:16]


def geometry(image_size: tuple[int, int]) -> tuple[tuple[int, int, int, int], tuple[int, int], tuple[int, int]]:
    """``(padding, y_shape, z_shape)`` that :func:`~cdomain.latents.encode.pad_images` implies."""
    height, width = image_size
    padded_h, padded_w = (math.ceil(side / PAD_MULTIPLE) * PAD_MULTIPLE for side in (height, width))
    left, top = (padded_w - width) // 2, (padded_h - height) // 2
    padding = (left, padded_w - width - left, top, padded_h - height - top)
    y_shape = (padded_h // LATENT_STRIDE, padded_w // LATENT_STRIDE)
    z_shape = (padded_h // PAD_MULTIPLE, padded_w // PAD_MULTIPLE)
    return padding, y_shape, z_shape


def _max_strings_bytes(image_size: tuple[int, int]) -> int:
    padding, _, _ = geometry(image_size)
    padded = (image_size[0] + padding[2] + padding[3]) * (image_size[1] + padding[0] + padding[1])
    return 1024 + MAX_BYTES_PER_PIXEL * padded


def _codec_id(codec: torch.nn.Module) -> tuple[int, int]:
    config = codec_config(codec)
    architecture, quality = config["architecture"], config.get("quality")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"codec architecture {architecture!r} has no bitstream id; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES.index(architecture), int(quality or 0)


def to_bytes(compressed: Compressed, codec: torch.nn.Module, *, index: int | None = None) -> bytes:
    """The container for image ``index`` of ``compressed`` (``None``: the batch must hold one)."""
    y_strings, z_strings = compressed.strings
    if index is None:
        if len(y_strings) != 1:
            raise ValueError(f"a bitstream file holds one image; the batch holds {len(y_strings)} (pass index=)")
        index = 0
    y_string, z_string = bytes(y_strings[index]), bytes(z_strings[index])
    image_size = tuple(int(side) for side in compressed.image_size)
    if not all(1 <= side <= MAX_SIDE for side in image_size):
        raise ValueError(f"image size {image_size} outside 1..{MAX_SIDE}")
    padding, y_shape, z_shape = geometry(image_size)
    if tuple(compressed.padding) != padding or tuple(compressed.shape) != z_shape:
        raise ValueError(
            f"compressed padding {tuple(compressed.padding)} / z shape {tuple(compressed.shape)} are not the "
            f"centred padding to a multiple of {PAD_MULTIPLE} ({padding} / {z_shape}) this format stores"
        )
    architecture_id, quality = _codec_id(codec)
    header = _FIXED.pack(
        MAGIC, VERSION, architecture_id, quality, 0, codec_hash(codec), *image_size, *y_shape, *z_shape, *padding, 2
    )
    return b"".join([header, _LENGTH.pack(len(y_string)), y_string, _LENGTH.pack(len(z_string)), z_string])


def write_bitstream(
    path: str | os.PathLike[str], compressed: Compressed, codec: torch.nn.Module, *, index: int | None = None
) -> Path:
    """Write one image's container to ``path`` atomically; returns the path."""
    return atomic_write(path, to_bytes(compressed, codec, index=index))


def _parse_fixed(head: bytes, source: str) -> tuple:
    if len(head) < 4 or head[:4] != MAGIC:
        raise BitstreamError(source, f"not a cdomain latent bitstream (no {MAGIC!r} magic)")
    if len(head) < FIXED_SIZE:
        raise BitstreamError(source, f"truncated header ({len(head)} of {FIXED_SIZE} bytes)")
    magic, version, arch_id, quality, flags, hash_, h, w, yh, yw, zh, zw, pl, pr, pt, pb, count = _FIXED.unpack_from(head)
    if version != VERSION:
        raise BitstreamError(source, f"bitstream version {version}; this cdomain reads version {VERSION}")
    if arch_id >= len(ARCHITECTURES):
        raise BitstreamError(source, f"unknown codec architecture id {arch_id}")
    if quality > 8:
        raise BitstreamError(source, f"codec quality {quality} outside 1..8")
    if flags != 0:
        raise BitstreamError(source, f"unknown flags {flags:#04x}")
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise BitstreamError(source, f"image size {h}x{w} outside 1..{MAX_SIDE}")
    padding, y_shape, z_shape = geometry((h, w))
    if (pl, pr, pt, pb) != padding:
        raise BitstreamError(source, f"padding {(pl, pr, pt, pb)} is not the centred padding {padding} of a {h}x{w} image")
    if (yh, yw) != y_shape or (zh, zw) != z_shape:
        raise BitstreamError(
            source, f"latent shapes y {(yh, yw)}, z {(zh, zw)} do not fit a {h}x{w} image (y {y_shape}, z {z_shape})"
        )
    if count != 2:
        raise BitstreamError(source, f"{count} strings; a hyperprior bitstream has 2 (y and z)")
    return ARCHITECTURES[arch_id], quality or None, hash_, (h, w), y_shape, z_shape, padding


def from_bytes(data: bytes | bytearray | memoryview, source: str = "<bytes>") -> Bitstream:
    """Parse and validate a whole container; every problem raises :class:`BitstreamError`."""
    data = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    architecture, quality, hash_, image_size, y_shape, z_shape, padding = _parse_fixed(bytes(data[:FIXED_SIZE]), source)
    if len(data) - FIXED_SIZE > _max_strings_bytes(image_size):
        raise BitstreamError(source, f"{len(data)} bytes is far more than a {image_size[0]}x{image_size[1]} image's bitstream")
    offset, strings = FIXED_SIZE, []
    for name in ("y", "z"):
        if len(data) - offset < _LENGTH.size:
            raise BitstreamError(source, f"truncated before the length of the {name} string")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        if length > len(data) - offset:
            raise BitstreamError(source, f"{name} string of {length} bytes, but only {len(data) - offset} bytes remain")
        if length < _MIN_STRING or length % 4:
            raise BitstreamError(
                source, f"{name} string of {length} bytes is not a rANS stream "
                f"(whole 32-bit words, at least {_MIN_STRING} bytes)"
            )
        strings.append(bytes(data[offset : offset + length]))
        offset += length
    if offset != len(data):
        raise BitstreamError(source, f"{len(data) - offset} bytes of trailing data after the z string")
    return Bitstream(architecture, quality, hash_, image_size, y_shape, z_shape, padding, strings[0], strings[1])


def _read_limited(handle: BinaryIO, source: str) -> bytes:
    """The whole container from ``handle``: the header first, then at most what it allows."""
    try:
        head = handle.read(FIXED_SIZE)
        if not isinstance(head, bytes):
            raise BitstreamError(source, "not a binary file object")
        _, _, _, image_size, _, _, _ = _parse_fixed(head, source)
        limit = _max_strings_bytes(image_size) + 1
        parts, total = [head], 0
        while total < limit:
            chunk = handle.read(min(_CHUNK, limit - total))
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
    except OSError as error:
        raise BitstreamError(source, f"cannot read: {error.strerror or error}") from None
    return b"".join(parts)


def read_bitstream(src: Source) -> Bitstream:
    """Parse a container from a path, bytes or a binary file object (read from its position)."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        return from_bytes(src, "<bytes>")
    if isinstance(src, (str, os.PathLike)):
        source = str(src)
        try:
            with open(src, "rb") as handle:
                data = _read_limited(handle, source)
        except IsADirectoryError:
            raise BitstreamError(source, "is a folder, not a bitstream file") from None
        except OSError as error:
            raise BitstreamError(source, f"cannot read: {error.strerror or error}") from None
        return from_bytes(data, source)
    if hasattr(src, "read"):
        source = str(getattr(src, "name", "<stream>"))
        return from_bytes(_read_limited(src, source), source)
    raise TypeError(f"bitstream source must be a path, bytes or a binary file object, not {type(src).__name__}")


#: What identifies a codec in a file header: ``(architecture, quality or None, 16-byte weights hash)``.
CodecKey = tuple


def codec_key(codec: torch.nn.Module) -> CodecKey:
    """The ``(architecture, quality, hash)`` a file written by ``codec`` records.

    Hashing the weights costs a pass over them; readers of many files compute it once and pass
    it to :func:`check_codec` / :func:`read_latents` (``key=``).
    """
    config = codec_config(codec)
    return config["architecture"], config.get("quality") or None, codec_hash(codec)


@dataclass(frozen=True)
class Header:
    """The fixed header of a container: which codec wrote it and the image size."""

    architecture: str
    quality: int | None
    codec_hash: bytes
    image_size: tuple[int, int]

    @property
    def key(self) -> CodecKey:
        return self.architecture, self.quality, self.codec_hash

    def codec_description(self) -> str:
        quality = "unrecorded" if self.quality is None else str(self.quality)
        return f"{self.architecture} quality {quality} (weights hash {self.codec_hash.hex()[:16]})"


def read_header(path: str | os.PathLike[str]) -> Header:
    """The validated fixed header of the file at ``path`` (its first bytes only; the strings are
    not read or checked -- :func:`read_bitstream` does that)."""
    source = str(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(FIXED_SIZE)
    except IsADirectoryError:
        raise BitstreamError(source, "is a folder, not a bitstream file") from None
    except OSError as error:
        raise BitstreamError(source, f"cannot read: {error.strerror or error}") from None
    architecture, quality, hash_, image_size, _, _, _ = _parse_fixed(head, source)
    return Header(architecture, quality, hash_, image_size)


def check_codec(bitstream: Bitstream, codec: torch.nn.Module, source: str, *, key: CodecKey | None = None) -> None:
    """Raise :class:`BitstreamError` naming the codec the file needs unless ``codec`` is it.

    ``key``: ``codec_key(codec)`` computed beforehand (it must belong to ``codec``).
    """
    if key is None:
        try:
            key = codec_key(codec)
        except ValueError as error:
            raise BitstreamError(source, f"needs codec {bitstream.codec_description()}; {error}") from None
    if tuple(key) != (bitstream.architecture, bitstream.quality, bitstream.codec_hash):
        given = Bitstream(key[0], key[1], key[2], (1, 1), (0, 0), (0, 0), (0, 0, 0, 0), b"", b"")
        raise BitstreamError(source, f"needs codec {bitstream.codec_description()}, not {given.codec_description()}")


def _padded(string: bytes, symbols: int) -> bytes:
    """``string`` followed by zeros, so the rANS decoder never reads past it (module docstring)."""
    return string + bytes(4 * symbols + 64)


def _coder_tables(model: torch.nn.Module) -> tuple[list[list[int]], list[int], list[int]]:
    """The entropy model's CDF rows (each cut to its length), lengths and offsets as Python lists.

    CompressAI's ``decompress`` converts the whole padded CDF table to lists on every call (for
    the Gaussian conditional, ``SCALE_LEVELS`` rows of up to a few thousand entries): for small
    images that conversion costs far more than the decoding. The lists are kept on the model with
    the table tensors they came from (held, so their identity cannot pass to new tensors) and
    those tensors' version counters: a replaced or modified table is converted again.
    """
    tensors = (model._quantized_cdf, model._cdf_length, model._offset)
    versions = tuple(t._version for t in tensors)
    cached = model.__dict__.get("_cdomain_tables")
    if cached is None or any(a is not b for a, b in zip(cached[0], tensors)) or cached[1] != versions:
        cdf, lengths, offsets = tensors
        length_list = lengths.reshape(-1).int().tolist()
        rows = [row[:length] for row, length in zip(cdf.tolist(), length_list)]
        cached = (tensors, versions, (rows, length_list, offsets.reshape(-1).int().tolist()))
        model.__dict__["_cdomain_tables"] = cached  # a plain attribute: not a buffer or sub-module
    return cached[2]


def scale_indexes(conditional: torch.nn.Module, scales: Tensor) -> Tensor:
    """``conditional.build_indexes(scales)`` in one ``bucketize`` instead of a pass per table entry.

    CompressAI counts, for each scale, the table entries (all but the last) it does not exceed,
    and subtracts that from the last index: one elementwise pass per table entry. The index is
    therefore the number of those entries strictly below the scale -- what ``bucketize`` with
    ``right=False`` returns. Same comparisons in the same dtype, so the same indexes (a NaN scale
    exceeds nothing and gets the last index, as in CompressAI).
    """
    table = conditional.scale_table
    if table.numel() < 2 or not bool((table[1:] > table[:-1]).all()):
        return conditional.build_indexes(scales)  # not a sorted table: CompressAI's own way
    scales = conditional.lower_bound_scale(scales)
    indexes = torch.bucketize(scales, table[:-1].to(scales.dtype), right=False).int()
    return torch.where(torch.isnan(scales), torch.full_like(indexes, table.numel() - 1), indexes)


def _decode_y(conditional: torch.nn.Module, string: bytes, indexes: Tensor, dtype: torch.dtype,
              means: Tensor | None) -> Tensor:
    """``conditional.decompress([string], indexes, dtype, means)`` -- the same rANS decoder and the
    same dequantisation, with the coder tables converted once (:func:`_coder_tables`) and only the
    rows this image uses handed to the decoder."""
    rows, lengths, offsets = _coder_tables(conditional)
    if conditional._quantized_cdf.numel() == 0 or not rows:
        raise ValueError("Uninitialized CDFs. Run update() first")
    used, remapped = torch.unique(indexes.reshape(-1).int(), return_inverse=True)
    used = used.tolist()
    values = conditional.entropy_coder.decode_with_indexes(
        string, remapped.int().tolist(), [rows[i] for i in used], [lengths[i] for i in used], [offsets[i] for i in used]
    )
    symbols = torch.tensor(values, dtype=conditional._quantized_cdf.dtype).reshape(indexes.shape)
    return conditional.dequantize(symbols, means, dtype)


@torch.no_grad()
def read_latents(src: Source, codec: torch.nn.Module, *, key: CodecKey | None = None) -> tuple[Tensor, Tensor]:
    """``(y_hat, sigma_hat)`` ``[1, M, Hp/16, Wp/16]`` of the image in a container, without ``g_s``.

    Entropy-decodes z, runs ``h_s`` for the scales, entropy-decodes y with them. The result is
    what :func:`~cdomain.latents.encode.encode` gives for the image: the whole padded latent grid,
    ``y_hat`` bit for bit; :attr:`Bitstream.box` (via :func:`read_bitstream`) locates the cells
    that cover the unpadded image. ``codec`` must be the one that wrote the file (checked by its
    architecture, quality and weights hash; ``key`` is :func:`codec_key` computed beforehand, which
    spares hashing the weights for every file).
    """
    bitstream = src if isinstance(src, Bitstream) else read_bitstream(src)
    source = str(src) if isinstance(src, (str, os.PathLike)) else str(getattr(src, "name", "<bytes>"))
    check_codec(bitstream, codec, source, key=key)
    channels_z = int(codec.entropy_bottleneck.channels) if hasattr(codec.entropy_bottleneck, "channels") else int(codec.N)
    z_symbols = channels_z * bitstream.z_shape[0] * bitstream.z_shape[1]
    z_hat = codec.entropy_bottleneck.decompress([_padded(bitstream.z_string, z_symbols)], bitstream.z_shape)
    params = codec.h_s(z_hat)
    means = None
    if params.shape[1] == 2 * codec.M:
        scales, means = params.chunk(2, 1)
    else:
        scales = params
    if tuple(scales.shape[-2:]) != bitstream.y_shape:
        raise BitstreamError(source, f"h_s gives y shape {tuple(scales.shape[-2:])}, the file declares {bitstream.y_shape}")
    indexes = scale_indexes(codec.gaussian_conditional, scales)
    y_string = _padded(bitstream.y_string, int(indexes.numel()))
    y_hat = _decode_y(codec.gaussian_conditional, y_string, indexes, z_hat.dtype, means)
    return y_hat, scales


__all__ = [
    "Bitstream",
    "BitstreamError",
    "CodecKey",
    "Header",
    "MAGIC",
    "OVERHEAD",
    "VERSION",
    "codec_hash",
    "codec_key",
    "check_codec",
    "from_bytes",
    "read_bitstream",
    "read_header",
    "read_latents",
    "to_bytes",
    "write_bitstream",
]
