"""ResNets on JPEG DCT coefficients."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from .base import ClassifierNet, check_fbs
from .blocks import conv_bn_relu, init_weights
from .registry import register_model
from .resnet import build_stages

__all__ = ["ResNetDCTMerged"]


class ResNetDCTMerged(ClassifierNet):
    """ResNet on the merged layout ``[B, 3n, H/8, W/8]``.

    The 8x8 block grid already has stride 8, so there is no pixel stem. ``entry_width=None`` feeds
    the 3n channels straight into the first stage (the frequency band selection network of
    dos Santos et al. 2020); an int adds a 3x3 convolution to that width first.
    ``input_norm`` puts a BatchNorm on the raw coefficients, whose scale varies by orders of
    magnitude between the DC and the highest frequencies.
    """

    def __init__(self, fbs: int = 64, block: str = "bottleneck", layers: Sequence[int] = (3, 4, 6, 3),
                 widths: Sequence[int] = (64, 128, 256, 512), strides: Sequence[int] = (1, 1, 2, 2),
                 entry_width: int | None = None, num_classes: int = 1000, stride_in_1x1: bool = True,
                 input_norm: bool = True, drop_rate: float = 0.0):
        check_fbs(fbs)
        in_ch = 3 * fbs
        spec = {"input": "dct", "layout": "merged", "fbs": fbs, "channels": in_ch, "stride": 8}
        stage_in = in_ch if entry_width is None else entry_width
        stages, out_ch = build_stages(block, stage_in, layers, widths, strides, stride_in_1x1)
        super().__init__(num_classes, out_ch, spec, drop_rate)
        entry: list[nn.Module] = [nn.BatchNorm2d(in_ch)] if input_norm else []
        if entry_width is not None:
            entry.append(conv_bn_relu(in_ch, entry_width, 3, 1))
        self.entry = nn.Sequential(*entry)
        self.stages = stages
        self.feature_stride = 8
        for s in strides:
            self.feature_stride *= s
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.stages(self.entry(x))


@register_model
def resnet_dct_small(num_classes: int = 10, fbs: int = 16, base_width: int = 32,
                     drop_rate: float = 0.0) -> ResNetDCTMerged:
    """Small DCT network for CPU-scale runs on 64x64 images (an 8x8 block grid).

    Input BatchNorm, a 3x3 entry convolution 3n -> w, then three BasicBlock stages w-2w-4w
    (w = ``base_width``) with strides 1-2-2 (8x8 -> 4x4 -> 2x2 for 64x64 pixels); any grid of at
    least 1x1 works. With w = 32 a training step (forward + backward) of 64 samples at n = 16
    takes about 30 ms on two CPU cores; w = 64 about 70 ms.
    """
    w = base_width
    return ResNetDCTMerged(fbs, "basic", (1, 1, 1), (w, 2 * w, 4 * w), (1, 2, 2), entry_width=w,
                           num_classes=num_classes, drop_rate=drop_rate)
