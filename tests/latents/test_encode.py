"""encode(): shapes, padding, eval-mode quantisation; real bitstream bpp vs the likelihood estimate."""

from __future__ import annotations

import pytest
import torch

from tests.latents import require_compressai

require_compressai()

from cdomain.latents.encode import (  # noqa: E402
    compress,
    crop_padding,
    decode_latents,
    decompress,
    encode,
    latent_box,
    pad_images,
)
from tests.latents.conftest import photos  # noqa: E402


@pytest.mark.parametrize("size,padded,padding", [
    ((32, 32), (64, 64), (16, 16, 16, 16)),
    ((64, 64), (64, 64), (0, 0, 0, 0)),
    ((100, 70), (128, 128), (29, 29, 14, 14)),
    ((65, 129), (128, 192), (31, 32, 31, 32)),
])
def test_padding_to_multiple_of_64(size, padded, padding):
    images = torch.rand(2, 3, *size)
    out, pads = pad_images(images)
    assert tuple(out.shape[-2:]) == padded
    assert pads == padding
    assert torch.equal(crop_padding(out, pads), images)


def test_latent_shapes_and_box(codec):
    images = photos(3, 32)
    latents = encode(codec, images)
    assert latents.y_hat.shape == latents.sigma_hat.shape == (3, 24, 4, 4)
    assert latents.padding == (16, 16, 16, 16)
    assert latents.image_size == (32, 32)
    assert latents.box == (1, 1, 2, 2)  # the 32x32 image covers the middle 2x2 latent cells
    assert latent_box((0, 0, 0, 0), (64, 64)) == (0, 0, 4, 4)
    assert latents.likelihood_bits.shape == (3,)
    wide = encode(codec, photos(1, 100)[..., :70])
    assert wide.y_hat.shape == (1, 24, 8, 8)


def test_eval_mode_quantisation_matches_bitstream(codec):
    images = photos(2, 128)
    latents = encode(codec, images)
    assert torch.equal(latents.y_hat, torch.round(latents.y_hat))  # y_hat = round(y)
    assert (latents.sigma_hat >= 0).all()  # h_s ends in a ReLU
    compressed = compress(codec, images)
    assert torch.equal(decode_latents(codec, compressed), latents.y_hat)
    with torch.no_grad():
        padded, _ = pad_images(images)
        y = codec.g_a(padded)
        z_hat, _ = codec.entropy_bottleneck(codec.h_a(torch.abs(y)), training=False)
        assert torch.allclose(latents.sigma_hat, codec.h_s(z_hat))
        assert torch.equal(latents.y_hat, codec.gaussian_conditional.quantize(y, "dequantize"))
    decoded = decompress(codec, compressed)
    assert decoded.shape == images.shape
    assert 0 <= decoded.min() and decoded.max() <= 1


def test_training_flag_does_not_change_encode(codec):
    codec.train()
    first = encode(codec, photos(1, 64)).y_hat
    codec.eval()
    assert torch.equal(first, encode(codec, photos(1, 64)).y_hat)


@pytest.mark.parametrize("size", [256, 512])
def test_real_bpp_agrees_with_likelihood_within_2_percent(codec, size):
    images = photos(2, size, seed=size)
    real = compress(codec, images).bits
    estimate = encode(codec, images).likelihood_bits
    ratio = real / estimate
    assert ((ratio - 1).abs() < 0.02).all(), ratio


def test_small_images_pay_per_stream_overhead(codec):
    # one y and one z stream per image, each ending in the coder state rounded up to 32-bit words:
    # on a 64x64 image at ~0.2 bpp (~100 bytes) that is several percent, so it is reported, not hidden
    images = photos(4, 64)
    real = compress(codec, images).bits
    estimate = encode(codec, images).likelihood_bits
    assert (real > estimate).all()
    assert ((real - estimate) / 8 < 40).all()  # bytes of overhead per image stay small in absolute terms
