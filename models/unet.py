"""Small encoder-decoder networks for semantic segmentation, on RGB pixels and on DCT coefficients.

Both give per-pixel class scores ``[B, K, H, W]`` at the input image's pixel resolution
(``input_spec.task == "segmentation"``, ``output_stride == 1``), so the loss compares them with
label maps of the same crop.

- RGB (``unet_small``): a U-Net (Ronneberger et al. 2015) with three 2x2 max-pools down to
  stride 8 and three bilinear upsamplings back, each joined to the encoder's features of the same
  resolution (skip connections), two 3x3 convolutions per level.
- DCT (``unet_dct_small``, merged layout ``[B, 3n, H/8, W/8]``): the 8x8 block transform
  already puts the image on the stride-8 grid, so the encoder starts there (a BatchNorm on the
  coefficients, whose scales differ by orders of magnitude between frequencies, then two 3x3
  convolutions), goes down once to stride 16 and back up with a skip connection. There is no
  pixel-resolution feature to join, so the head predicts each block's 8x8 pixels of class scores
  from the block's features: a 1x1 convolution to ``64 K`` channels rearranged by a pixel
  shuffle (Shi et al. 2016) into ``K`` maps at 8x the grid. The coefficients of a block hold
  everything about its pixels, so boundaries inside a block can still be placed.

``width`` scales every layer (8 for the RGB and 16 for the DCT network in CPU-scale runs). Inputs
whose sides are not multiples of the deepest stride are handled by resizing each upsampled map
to its skip's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import check_fbs, example_inputs
from .blocks import conv_bn_relu, init_weights
from .registry import register_model
from .spec import InputSpec

__all__ = ["UNet", "UNetDCT"]


def _double(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(in_ch, out_ch), conv_bn_relu(out_ch, out_ch))


def _up(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class _Segmenter(nn.Module):
    """The interface the task networks share: ``forward_features``, ``forward_head``,
    ``reset_classifier``, ``input_spec``, ``num_classes``, ``example_inputs``."""

    input_spec: InputSpec
    num_features: int
    num_classes: int

    def _make_head(self, num_classes: int) -> nn.Module:
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        """A freshly initialised head for ``num_classes`` classes (0 leaves the features)."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0 removes the head), got {num_classes}")
        self.num_classes = num_classes
        self.head = self._make_head(num_classes) if num_classes > 0 else nn.Identity()

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(*inputs))

    def example_inputs(self, batch_size: int = 2, image_size: int | tuple[int, int] = 224,
                       generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
        return example_inputs(self.input_spec, batch_size, image_size, generator)

    @staticmethod
    def _one(inputs: tuple[Tensor, ...], layout: str) -> Tensor:
        if len(inputs) != 1:
            raise ValueError(f"this network takes one input tensor ({layout} layout), got {len(inputs)}")
        return inputs[0]


class UNet(_Segmenter):
    """U-Net on RGB pixels: ``forward(x [B, 3, H, W])`` gives ``[B, K, H, W]``."""

    def __init__(self, num_classes: int = 10, width: int = 16):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.input_spec = InputSpec("rgb", "rgb", None, 3, 1, task="segmentation", output_stride=1)
        w = width
        self.enc1, self.enc2, self.enc3, self.bottom = _double(3, w), _double(w, 2 * w), _double(2 * w, 4 * w), \
            _double(4 * w, 8 * w)
        self.dec3, self.dec2, self.dec1 = _double(12 * w, 4 * w), _double(6 * w, 2 * w), _double(3 * w, w)
        self.num_features = w
        self.reset_classifier(num_classes)
        init_weights(self)

    def _make_head(self, num_classes: int) -> nn.Module:
        return nn.Conv2d(self.num_features, num_classes, 1)

    def forward_features(self, *inputs: Tensor) -> Tensor:
        x = self._one(inputs, "rgb")
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        bottom = self.bottom(F.max_pool2d(e3, 2))
        d3 = self.dec3(torch.cat([_up(bottom, e3), e3], 1))
        d2 = self.dec2(torch.cat([_up(d3, e2), e2], 1))
        return self.dec1(torch.cat([_up(d2, e1), e1], 1))


class UNetDCT(_Segmenter):
    """Encoder-decoder on merged DCT input: ``forward(x [B, 3n, H/8, W/8])`` gives ``[B, K, H, W]``."""

    #: Pixels per block side: the head's upsampling factor.
    BLOCK = 8

    def __init__(self, num_classes: int = 10, fbs: int = 16, width: int = 16):
        super().__init__()
        fbs = check_fbs(fbs)
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.input_spec = InputSpec("dct", "merged", fbs, 3 * fbs, 8, task="segmentation", output_stride=1)
        w = width
        self.norm = nn.BatchNorm2d(3 * fbs)
        self.enc = _double(3 * fbs, 4 * w)
        self.down = nn.Sequential(conv_bn_relu(4 * w, 8 * w, 3, 2), conv_bn_relu(8 * w, 8 * w))
        self.dec = _double(12 * w, 4 * w)
        self.num_features = 4 * w
        self.reset_classifier(num_classes)
        init_weights(self)

    def _make_head(self, num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(self.num_features, num_classes * self.BLOCK**2, 1), nn.PixelShuffle(self.BLOCK))

    def forward_features(self, *inputs: Tensor) -> Tensor:
        x = self.norm(self._one(inputs, "merged"))
        skip = self.enc(x)
        deep = self.down(skip)
        return self.dec(torch.cat([_up(deep, skip), skip], 1))


@register_model
def unet_small(num_classes: int = 10, width: int = 8) -> UNet:
    """U-Net on RGB pixels at CPU scale (8-16-32-64 channels, output stride 1): its full-resolution
    levels make it about 3x the cost of ``unet_dct_small`` per image even at this width."""
    return UNet(num_classes, width)


@register_model
def unet_dct_small(num_classes: int = 10, fbs: int = 16, width: int = 16) -> UNetDCT:
    """Encoder-decoder on merged DCT input (64-128 channels on the block grid), pixel-shuffle head."""
    return UNetDCT(num_classes, fbs, width)
