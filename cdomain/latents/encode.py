"""Images -> hyperprior latents ``(y_hat, sigma_hat)``, bitstreams, and their size in bits.

For the scale hyperprior (Balle et al. 2018, CompressAI's ``ScaleHyperprior``) at inference:
``y = g_a(x)`` (stride 16), ``z = h_a(|y|)`` (stride 64), ``z_hat`` = z rounded around the
entropy bottleneck's medians, ``sigma_hat = h_s(z_hat)`` (the scales of y's Gaussian model) and
``y_hat = round(y)`` -- exactly CompressAI's eval-mode quantisation
(``quantize(y, "dequantize", means)``), so ``y_hat`` equals what ``decompress()`` recovers from
the bitstream. For ``mbt2018-mean`` ``h_s`` also predicts means and ``y_hat = round(y - mu) + mu``.

Images are RGB in [0, 1], ``[B, 3, H, W]``. They are padded with zeros, centred, to a multiple
of 64 (the codec's total stride) as CompressAI's evaluation does; the padding is recorded so
that decoded images can be cropped back and so the latent cells covering the image are known.

Two sizes are reported per image, both in bits and divided by the *unpadded* pixel count for
bits per pixel: the real bitstream length from ``compress()`` (one rANS stream for y and one
for z per image) and the estimate ``-sum log2 p`` from the likelihoods (what training
minimises). They differ by (a) a fixed cost per stream -- the coder's final state, written in
32-bit words, about 4-8 bytes per stream -- and (b) the coder's scale table: it codes each
y element with the next larger of a fixed set of scales rather than the predicted one
(:data:`cdomain.latents.codecs.SCALE_LEVELS`). Measured with the small trained test codec at
about 0.2 bpp: 64x64 images +10-15% (about 100 bytes per image, so (a) dominates), 128x128
+3-5%, 256x256 +1.5%, 512x512 +1.0% (the tests require 2% from 256x256 up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

#: Total stride of the hyperprior codecs (g_a: 16, h_a: 4 more).
PAD_MULTIPLE = 64
#: Stride of y (and so of y_hat and sigma_hat) in pixels.
LATENT_STRIDE = 16


class PaddedImage:
    """What an image's latents know of it: ``padding`` (left, right, top, bottom) and the unpadded
    ``image_size`` (height, width), with the latent cells that cover it and its pixel count."""

    padding: tuple[int, int, int, int]
    image_size: tuple[int, int]

    @property
    def pixels(self) -> int:
        return self.image_size[0] * self.image_size[1]

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(top, left, height, width)`` of the latent cells that overlap the unpadded image."""
        return latent_box(self.padding, self.image_size)


@dataclass
class Latents(PaddedImage):
    """Latents of a batch: ``y_hat``/``sigma_hat`` ``[B, M, Hp/16, Wp/16]`` and their bit estimate."""

    y_hat: Tensor
    sigma_hat: Tensor
    padding: tuple[int, int, int, int]  # pixels added (left, right, top, bottom)
    image_size: tuple[int, int]  # unpadded (height, width)
    likelihood_bits: Tensor  # [B]: -sum log2 p(y_hat) - sum log2 p(z_hat)

    @property
    def likelihood_bpp(self) -> Tensor:
        return self.likelihood_bits / self.pixels


@dataclass
class Compressed:
    """Bitstreams of a batch: per image one y string and one z string."""

    strings: list[list[bytes]]  # [y_strings, z_strings]
    shape: tuple[int, int]  # z's spatial size, needed to decode
    padding: tuple[int, int, int, int]
    image_size: tuple[int, int]

    @property
    def bits(self) -> Tensor:
        """Real size of each image's bitstreams, in bits ``[B]``."""
        return torch.tensor([8.0 * (len(y) + len(z)) for y, z in zip(*self.strings)], dtype=torch.float64)

    @property
    def bpp(self) -> Tensor:
        return self.bits / (self.image_size[0] * self.image_size[1])


def pad_images(images: Tensor, multiple: int = PAD_MULTIPLE) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Zero-pad ``[B, 3, H, W]`` centred to a multiple of ``multiple``; returns (padded, padding)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected RGB images [B, 3, H, W], got shape {tuple(images.shape)}")
    height, width = images.shape[-2:]
    new_h, new_w = math.ceil(height / multiple) * multiple, math.ceil(width / multiple) * multiple
    left, top = (new_w - width) // 2, (new_h - height) // 2
    padding = (left, new_w - width - left, top, new_h - height - top)
    if any(padding):
        images = torch.nn.functional.pad(images, padding, mode="constant", value=0.0)
    return images, padding


def crop_padding(images: Tensor, padding: tuple[int, int, int, int]) -> Tensor:
    """Undo :func:`pad_images`."""
    left, right, top, bottom = padding
    return images[..., top : images.shape[-2] - bottom, left : images.shape[-1] - right]


def latent_box(padding: tuple[int, int, int, int], image_size: tuple[int, int], stride: int = LATENT_STRIDE):
    """``(top, left, height, width)`` of the latent cells that overlap the unpadded image."""
    left, _, top, _ = padding
    height, width = image_size
    row0, col0 = top // stride, left // stride
    row1, col1 = -(-(top + height) // stride), -(-(left + width) // stride)
    return row0, col0, row1 - row0, col1 - col0


def _ste_round(x: Tensor) -> Tensor:
    """Round in the forward pass, identity gradient in the backward pass (straight-through)."""
    return x + (torch.round(x) - x).detach()


def _bits(likelihoods: Tensor) -> Tensor:
    return -torch.log2(likelihoods).flatten(1).sum(1)


def forward_latents(model: torch.nn.Module, images: Tensor, *, training: bool) -> dict[str, Tensor]:
    """Run the analysis side of ``model`` on padded images.

    ``training=False``: CompressAI's inference quantisation (rounding) throughout.
    ``training=True`` (joint fine-tuning): the rate is estimated from likelihoods of the
    noise-perturbed latents, as in CompressAI's training; the task sees the *rounded* latents,
    with a straight-through gradient, so that what it learns on is what it gets at inference.

    Returns ``y_hat``, ``sigma_hat``, ``bits`` ``[B]`` (estimate) and ``y`` (unquantised).
    """
    y = model.g_a(images)
    z = model.h_a(torch.abs(y))
    z_noisy, z_likelihoods = model.entropy_bottleneck(z, training=training)
    if training:
        medians = model.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)
        z_hat = _ste_round(z - medians) + medians
    else:
        z_hat = z_noisy
    params = model.h_s(z_hat)
    means = None
    if params.shape[1] == 2 * y.shape[1]:  # mbt2018-mean: scales and means
        scales, means = params.chunk(2, 1)
    else:
        scales = params
    y_noisy, y_likelihoods = model.gaussian_conditional(y, scales, means=means, training=training)
    if training:
        y_hat = _ste_round(y) if means is None else _ste_round(y - means) + means
    else:
        y_hat = y_noisy
    return {"y": y, "y_hat": y_hat, "sigma_hat": scales, "bits": _bits(y_likelihoods) + _bits(z_likelihoods)}


@torch.no_grad()
def encode(model: torch.nn.Module, images: Tensor, *, multiple: int = PAD_MULTIPLE) -> Latents:
    """``(y_hat, sigma_hat)`` of RGB ``images`` in [0, 1], with padding and bit estimate."""
    padded, padding = pad_images(images, multiple)
    out = forward_latents(model, padded, training=False)
    return Latents(out["y_hat"], out["sigma_hat"], padding, tuple(images.shape[-2:]), out["bits"].double())


@torch.no_grad()
def compress(model: torch.nn.Module, images: Tensor, *, multiple: int = PAD_MULTIPLE) -> Compressed:
    """Entropy-code ``images`` with ``model`` (whose tables must be current: ``update()``)."""
    padded, padding = pad_images(images, multiple)
    out = model.compress(padded)
    return Compressed(out["strings"], tuple(out["shape"]), padding, tuple(images.shape[-2:]))


@torch.no_grad()
def decompress(model: torch.nn.Module, compressed: Compressed) -> Tensor:
    """Decode :class:`Compressed` bitstreams back to RGB images of the original size."""
    out = model.decompress(compressed.strings, compressed.shape)
    return crop_padding(out["x_hat"], compressed.padding)


@torch.no_grad()
def decode_latents(model: torch.nn.Module, compressed: Compressed) -> Tensor:
    """The ``y_hat`` that a decoder recovers from the bitstreams (for checking :func:`encode`)."""
    z_hat = model.entropy_bottleneck.decompress(compressed.strings[1], compressed.shape)
    params = model.h_s(z_hat)
    means = None
    if params.shape[1] == 2 * model.M:
        scales, means = params.chunk(2, 1)
    else:
        scales = params
    indexes = model.gaussian_conditional.build_indexes(scales)
    return model.gaussian_conditional.decompress(compressed.strings[0], indexes, z_hat.dtype, means)
