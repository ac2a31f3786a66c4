"""SASNet: scale-adaptive selection for crowd counting (Song et al., AAAI 2021, "To Choose or to
Fuse? Scale Selection for Crowd Counting"), as far as the paper describes it.

- Encoder: VGG-16's five convolution stages (conv1_x .. conv5_x, feature strides 1, 2, 4, 8
  and 16); the first four max-pools only, as in the paper's figure.
- Decoder: top-down, each level's features are upsampled (bilinear) to the next finer level,
  concatenated with that level's encoder features and passed through two 3x3 convolutions,
  so every level has a decoded feature map.
- Density heads, one per level: a multi-branch module (1x1, 1x1 then 3x3, 1x1 then 5x5
  branches, concatenated with the input) and a 1x1 convolution to one density channel.
- Scale selection: a confidence head per level on block-averaged features (blocks of
  ``block`` pixels) gives one logit per block and level; a softmax over the levels (after a
  sigmoid, as the authors' implementation does) weights the levels' density maps per block.
- Pyramid region awareness (PRA) loss: the region of worst relative count error is found by
  repeatedly splitting the current region into four quadrants and keeping the worst one;
  its cells get ``pra_weight`` extra weight in the squared-error loss (:meth:`extra_loss`,
  which the trainer adds to CSRNet's Euclidean loss). The paper gives the search but not every
  constant; the depth (``pra_levels``) and weight are parameters here.

Adapted to cdomain's density targets: the network's output is on the stride-8 grid of the
other counting networks (one value per 8x8-pixel cell, counts are sums), so each level's
density map is brought to that grid (average-pooled from finer levels, nearest-upsampled
from the stride-16 level) before the selection. ``width`` scales every layer (64 as
published, 16 for ``sasnet_small``). The front end loads torchvision ``vgg16`` weights
(``--init-backbone``) when built without BatchNorm, the default of ``sasnet``.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .base import example_inputs
from .blocks import conv_bn_relu, init_weights
from .registry import register_model
from .spec import InputSpec

__all__ = ["SASNet", "pra_mask"]

#: VGG-16's conv stages: (convolutions, channels); a 2x2 max-pool precedes every stage but the first.
STAGES = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
OUTPUT_STRIDE = 8


def _conv(in_ch: int, out_ch: int, kernel: int, batch_norm: bool) -> nn.Module:
    if batch_norm:
        return conv_bn_relu(in_ch, out_ch, kernel)
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2), nn.ReLU(inplace=True))


class MultiBranch(nn.Module):
    """1x1, 1x1-3x3 and 1x1-5x5 branches (each back to ``channels``), concatenated with the input."""

    def __init__(self, channels: int, batch_norm: bool):
        super().__init__()
        half = max(1, channels // 2)
        self.branches = nn.ModuleList(
            nn.Sequential(_conv(channels, half, 1, batch_norm), _conv(half, channels, kernel, batch_norm))
            for kernel in (1, 3, 5))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches] + [x], dim=1)


def pra_mask(error: Tensor, target: Tensor, levels: int = 3) -> Tensor:
    """``[B, 1, H, W]`` 0/1 masks of the pyramid's hardest region per image.

    Starting from the whole map, the region is split into four quadrants and the quadrant with
    the largest relative count error ``|sum(error)| / max(sum(target), 1)`` is kept, ``levels``
    times (or until the region is a single cell). ``error`` is prediction minus target.
    """
    batch, _, height, width = error.shape
    mask = torch.zeros_like(error)
    for b in range(batch):
        top, left, h, w = 0, 0, height, width
        for _ in range(levels):
            if h < 2 and w < 2:
                break
            rows = [(top, h // 2), (top + h // 2, h - h // 2)] if h >= 2 else [(top, h)]
            cols = [(left, w // 2), (left + w // 2, w - w // 2)] if w >= 2 else [(left, w)]
            best, choice = -1.0, None
            for r0, rh in rows:
                for c0, cw in cols:
                    diff = float(error[b, :, r0:r0 + rh, c0:c0 + cw].sum())
                    count = float(target[b, :, r0:r0 + rh, c0:c0 + cw].sum())
                    relative = abs(diff) / max(count, 1.0)
                    if relative > best:
                        best, choice = relative, (r0, c0, rh, cw)
            top, left, h, w = choice
        mask[b, :, top:top + h, left:left + w] = 1.0
    return mask


class SASNet(nn.Module):
    """SASNet on RGB pixels: ``forward(x)`` gives ``[B, 1, H/8, W/8]`` density maps."""

    def __init__(self, width: int = 64, batch_norm: bool = False, block: int = 32, pra_weight: float = 1.0,
                 pra_levels: int = 3):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        if block < OUTPUT_STRIDE or block % OUTPUT_STRIDE:
            raise ValueError(f"block must be a positive multiple of {OUTPUT_STRIDE} pixels, got {block}")
        if pra_weight < 0 or pra_levels < 0:
            raise ValueError("pra_weight and pra_levels must be >= 0")
        self.block, self.pra_weight, self.pra_levels = block, float(pra_weight), int(pra_levels)
        self.input_spec = InputSpec("rgb", "rgb", None, 3, 1, task="density", output_stride=OUTPUT_STRIDE)
        scale = lambda channels: max(1, channels * width // 64)  # noqa: E731
        stages, in_ch, encoder_channels = [], 3, []
        for index, (convs, channels) in enumerate(STAGES):
            layers: list[nn.Module] = [nn.MaxPool2d(2, 2)] if index else []
            for _ in range(convs):
                layers.append(_conv(in_ch, scale(channels), 3, batch_norm))
                in_ch = scale(channels)
            stages.append(nn.Sequential(*layers))
            encoder_channels.append(in_ch)
        self.encoder = nn.ModuleList(stages)
        # decoder, coarsest first: (mid, out) channels of its two 3x3 convolutions, as published
        plan = ((1024, 512), (512, 256), (256, 128), (128, 64), (64, 64))
        decoders, decoded, previous = [], [], 0
        for level, (mid, out) in zip(range(4, -1, -1), plan):
            in_ch = encoder_channels[level] + previous
            decoders.append(nn.Sequential(_conv(in_ch, scale(mid), 3, batch_norm), _conv(scale(mid), scale(out), 3, batch_norm)))
            previous = scale(out)
            decoded.append(previous)
        self.decoder = nn.ModuleList(decoders)
        self.density_heads = nn.ModuleList(
            nn.Sequential(MultiBranch(channels, batch_norm), nn.Conv2d(4 * channels, 1, 1)) for channels in decoded)
        self.confidence_heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, max(1, channels // 2), 1), nn.ReLU(inplace=True),
                          nn.Conv2d(max(1, channels // 2), 1, 1)) for channels in decoded)
        self.strides = (16, 8, 4, 2, 1)  # of the decoded levels, coarsest first
        init_weights(self)

    def load_backbone(self, state: Mapping[str, Tensor]) -> int:
        """torchvision ``vgg16`` weights for the encoder's 13 convolutions (ValueError if they do not fit)."""
        from .backbone import load_vgg16_convs

        return load_vgg16_convs([m for m in self.encoder.modules() if isinstance(m, nn.Conv2d)], state)

    def levels(self, x: Tensor) -> list[Tensor]:
        """Decoded feature maps, coarsest (stride 16) first."""
        features = []
        for stage in self.encoder:
            x = stage(x)
            features.append(x)
        decoded, previous = [], None
        for level, decoder in zip(range(4, -1, -1), self.decoder):
            skip = features[level]
            if previous is None:
                merged = skip
            else:
                merged = torch.cat([skip, F.interpolate(previous, size=skip.shape[-2:], mode="bilinear",
                                                        align_corners=False)], dim=1)
            previous = decoder(merged)
            decoded.append(previous)
        return decoded

    def forward(self, *inputs: Tensor) -> Tensor:
        if len(inputs) != 1:
            raise ValueError(f"SASNet takes one RGB tensor, got {len(inputs)}")
        x = inputs[0]
        grid = (x.shape[-2] // OUTPUT_STRIDE, x.shape[-1] // OUTPUT_STRIDE)
        blocks = (max(1, -(-x.shape[-2] // self.block)), max(1, -(-x.shape[-1] // self.block)))
        densities, confidences = [], []
        for features, stride, density_head, confidence_head in zip(self.levels(x), self.strides, self.density_heads,
                                                                   self.confidence_heads):
            density = density_head(features)
            if stride < OUTPUT_STRIDE:
                factor = OUTPUT_STRIDE // stride
                density = F.avg_pool2d(density[..., :grid[0] * factor, :grid[1] * factor], factor)
            else:
                density = F.interpolate(density, size=grid, mode="nearest")
            densities.append(density)
            logits = confidence_head(F.adaptive_avg_pool2d(features, blocks))
            confidences.append(F.interpolate(logits, size=grid, mode="nearest"))
        weights = torch.softmax(torch.sigmoid(torch.cat(confidences, dim=1)), dim=1)
        return (torch.cat(densities, dim=1) * weights).sum(dim=1, keepdim=True)

    def extra_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """The PRA term: ``pra_weight / (2B) * sum over the hardest region of (pred - target)^2``."""
        if self.pra_weight == 0 or self.pra_levels == 0:
            return pred.new_zeros(())
        mask = pra_mask((pred - target).detach(), target, self.pra_levels)
        return self.pra_weight * ((pred - target).pow(2) * mask).sum() / (2 * pred.shape[0])

    def example_inputs(self, batch_size: int = 2, image_size: int | tuple[int, int] = 224,
                       generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
        return example_inputs(self.input_spec, batch_size, image_size, generator)


@register_model
def sasnet(width: int = 64, batch_norm: bool = False, block: int = 32, pra_weight: float = 1.0,
           pra_levels: int = 3) -> SASNet:
    """SASNet on RGB (Song et al. 2021): VGG-16 encoder (torchvision ``vgg16`` weights through
    ``--init-backbone``), five decoded levels with density and confidence heads, PRA loss."""
    return SASNet(width, batch_norm, block, pra_weight, pra_levels)


@register_model
def sasnet_small(width: int = 16, batch_norm: bool = True, block: int = 32, pra_weight: float = 1.0,
                 pra_levels: int = 3) -> SASNet:
    """SASNet at a quarter of the width, with BatchNorm, for CPU runs from scratch."""
    return SASNet(width, batch_norm, block, pra_weight, pra_levels)
