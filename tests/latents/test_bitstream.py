"""Bitstream containers: round trip to encode()'s latents without g_s, codec checks, corrupt files."""

from __future__ import annotations

import io
import os
import pickle
import random
import struct

import numpy as np
import pytest
import torch

from tests.latents import require_compressai

require_compressai()

from cdomain.errors import DataError  # noqa: E402
from cdomain.latents.bitstream import (  # noqa: E402
    FIXED_SIZE,
    OVERHEAD,
    BitstreamError,
    from_bytes,
    read_bitstream,
    read_latents,
    to_bytes,
    write_bitstream,
)
from cdomain.latents.encode import compress, encode  # noqa: E402
from tests.helpers import photo_like  # noqa: E402
from tests.latents.conftest import photos  # noqa: E402

FUZZ_CASES = int(os.environ.get("CDOMAIN_FUZZ_CASES", "300"))


def image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(photo_like(height, width, seed=seed))).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("size", [(64, 64), (100, 70)])
def test_round_trip_equals_encode(codec, tmp_path, size):
    x = image(*size)
    compressed = compress(codec, x)
    path = write_bitstream(tmp_path / "a.cdlb", compressed, codec)
    y_hat, sigma_hat = read_latents(path, codec)
    latents = encode(codec, x)
    assert y_hat.shape == latents.y_hat.shape and sigma_hat.shape == latents.sigma_hat.shape
    assert torch.equal(y_hat, latents.y_hat)
    assert torch.equal(sigma_hat, latents.sigma_hat)
    parsed = read_bitstream(path)
    assert parsed.padding == latents.padding and parsed.image_size == latents.image_size
    assert parsed.box == latents.box


def test_g_s_is_never_called(codec, monkeypatch):
    data = to_bytes(compress(codec, photos(1, 64)), codec)

    def forbidden(*args, **kwargs):
        raise AssertionError("g_s was called")

    monkeypatch.setattr(codec.g_s, "forward", forbidden)
    y_hat, _ = read_latents(data, codec)
    assert y_hat.shape == (1, 24, 4, 4)


def test_wrong_codec_names_the_needed_one(codec):
    from cdomain.latents.codecs import load_codec
    from tests.latents.conftest import CODEC_PATH

    data = to_bytes(compress(codec, photos(1, 64)), codec)
    other = load_codec(CODEC_PATH)
    with torch.no_grad():
        other.h_s[0].bias.add_(0.01)  # same architecture and quality, other weights
    with pytest.raises(BitstreamError) as raised:
        read_latents(data, other)
    message = str(raised.value)
    assert "needs codec bmshj2018-hyperprior quality 8" in message
    assert read_bitstream(data).codec_hash.hex()[:16] in message
    other.cdomain_config["quality"] = 3
    with pytest.raises(BitstreamError, match="quality 8"):
        read_latents(data, other)


def test_sources_agree(codec, tmp_path):
    data = to_bytes(compress(codec, photos(1, 80, seed=3)), codec)
    path = tmp_path / "b.cdlb"
    path.write_bytes(data)
    results = [read_latents(path, codec), read_latents(str(path), codec), read_latents(data, codec),
               read_latents(bytearray(data), codec), read_latents(io.BytesIO(data), codec)]
    with path.open("rb") as handle:
        results.append(read_latents(handle, codec))
    for y_hat, sigma_hat in results[1:]:
        assert torch.equal(y_hat, results[0][0]) and torch.equal(sigma_hat, results[0][1])


def test_size_and_bpp_match_compress(codec, tmp_path):
    x = image(100, 70, seed=5)
    compressed = compress(codec, x)
    path = write_bitstream(tmp_path / "c.cdlb", compressed, codec)
    y_string, z_string = compressed.strings[0][0], compressed.strings[1][0]
    assert path.stat().st_size == OVERHEAD + len(y_string) + len(z_string)
    parsed = read_bitstream(path)
    assert parsed.bits == float(compressed.bits[0])
    assert parsed.bpp == pytest.approx(float(compressed.bpp[0]), rel=0, abs=1e-12)
    assert (path.stat().st_size - OVERHEAD) * 8 / (100 * 70) == pytest.approx(float(compressed.bpp[0]))


def test_batches_need_an_index(codec):
    compressed = compress(codec, photos(2, 64))
    with pytest.raises(ValueError, match="one image"):
        to_bytes(compressed, codec)
    second = to_bytes(compressed, codec, index=1)
    assert read_bitstream(second).y_string == compressed.strings[0][1]


def test_error_is_a_picklable_data_error(codec):
    with pytest.raises(BitstreamError) as raised:
        from_bytes(b"CDLB\x01", "some/file.cdlb")
    error = raised.value
    assert isinstance(error, DataError)
    assert str(error).startswith("some/file.cdlb: truncated header")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is BitstreamError and str(copy) == str(error)


@pytest.mark.parametrize("edit,cause", [
    (lambda d: b"XXXX" + d[4:], "magic"),
    (lambda d: d[:4] + b"\x07" + d[5:], "version"),
    (lambda d: d[:5] + b"\x09" + d[6:], "architecture"),
    (lambda d: d[:24] + struct.pack(">2I", 0, 64) + d[32:], "image size"),
    (lambda d: d[:24] + struct.pack(">2I", 1 << 20, 64) + d[32:], "image size"),
    (lambda d: d[:24] + struct.pack(">2I", 63, 64) + d[32:], "padding"),
    (lambda d: d[:32] + struct.pack(">4H", 8, 4, 1, 1) + d[40:], "latent shapes"),
    (lambda d: d[:48] + struct.pack(">I", 3) + d[52:], "strings"),
    (lambda d: d[:FIXED_SIZE] + struct.pack(">I", 0xFFFFFFFF) + d[FIXED_SIZE + 4:], "remain"),
    (lambda d: d + b"\0", "trailing"),
    (lambda d: d[:-1], "remain"),
])
def test_invalid_headers_are_refused(codec, edit, cause):
    data = to_bytes(compress(codec, photos(1, 64)), codec)
    with pytest.raises(BitstreamError, match=cause):
        read_latents(edit(data), codec)


def _mutate(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:  # truncation
        return data[: rng.randrange(len(data))]
    if kind == 1:  # byte flips
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] ^= rng.randint(1, 255)
        return bytes(out)
    if kind == 2:  # a random length field
        y_length = struct.unpack_from(">I", data, FIXED_SIZE)[0]
        offset = rng.choice([FIXED_SIZE, FIXED_SIZE + 4 + y_length])
        value = rng.choice([0, 1, 4, 8, rng.randrange(1 << 32), rng.randrange(len(data) + 16)])
        return data[:offset] + struct.pack(">I", value) + data[offset + 4 :]
    return data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))  # appended garbage


def test_fuzzed_files_raise_only_bitstream_errors(codec, tmp_path):
    from cdomain.latents.bitstream import read_header

    rng = random.Random(1234)
    originals = [to_bytes(compress(codec, image(*size, seed=size[0])), codec) for size in [(64, 64), (80, 48)]]
    decoded = refused = 0
    for case in range(FUZZ_CASES):
        data = originals[case % len(originals)]
        mutated = _mutate(data, rng)
        if case % 10 == 0:  # the header-only reader (bitstream folders) and the path reader, from a file
            path = tmp_path / f"{case}.cdlb"
            path.write_bytes(mutated)
            for reader in (read_header, read_bitstream):
                try:
                    reader(path)
                except BitstreamError as error:
                    assert str(path) in str(error)
        try:
            parsed = from_bytes(mutated)
            y_hat, sigma_hat = read_latents(mutated, codec)
        except BitstreamError:
            refused += 1
            continue
        decoded += 1
        expected = (1, 24, *parsed.y_shape)
        assert tuple(y_hat.shape) == expected and tuple(sigma_hat.shape) == expected
    assert refused > 0 and refused + decoded == FUZZ_CASES


def test_scale_indexes_equal_compressai_build_indexes(codec):
    from cdomain.latents.bitstream import scale_indexes

    conditional = codec.gaussian_conditional
    table = conditional.scale_table
    generator = torch.Generator().manual_seed(0)
    scales = torch.cat([
        table,  # exactly on every table entry
        torch.nextafter(table, torch.full_like(table, float("inf"))),  # just above each
        torch.nextafter(table, torch.zeros_like(table)),  # just below each
        torch.tensor([0.0, -1.0, 1e-9, float(table[-1]) * 10, float("inf"), float("nan")]),
        torch.rand(2000, generator=generator) * float(table[-1]) * 1.2,
    ]).reshape(1, 1, -1, 1)
    assert torch.equal(scale_indexes(conditional, scales), conditional.build_indexes(scales))


def test_y_decoding_equals_compressai_decompress(codec):
    from cdomain.latents.bitstream import _decode_y, scale_indexes

    compressed = compress(codec, image(100, 70, seed=7))
    z_hat = codec.entropy_bottleneck.decompress(compressed.strings[1], compressed.shape)
    scales = codec.h_s(z_hat)
    indexes = scale_indexes(codec.gaussian_conditional, scales)
    expected = codec.gaussian_conditional.decompress(compressed.strings[0], indexes, z_hat.dtype, None)
    decoded = _decode_y(codec.gaussian_conditional, compressed.strings[0][0], indexes, z_hat.dtype, None)
    assert decoded.dtype == expected.dtype and torch.equal(decoded, expected)
    codec.update(force=True)  # new coder tables: the cached lists are rebuilt
    indexes = scale_indexes(codec.gaussian_conditional, scales)
    compressed = compress(codec, image(100, 70, seed=7))
    expected = codec.gaussian_conditional.decompress(compressed.strings[0], indexes, z_hat.dtype, None)
    assert torch.equal(_decode_y(codec.gaussian_conditional, compressed.strings[0][0], indexes, z_hat.dtype, None),
                       expected)
