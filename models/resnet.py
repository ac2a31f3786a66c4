"""ResNet on RGB pixels: the ResNet-50 baseline and a small stride-8 counterpart for 64x64 images."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from .base import ClassifierNet
from .blocks import BasicBlock, Bottleneck, conv_bn_relu, init_weights, make_stage
from .registry import register_model

__all__ = ["ResNet", "BLOCKS", "build_stages"]

BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def build_stages(block: str, in_ch: int, layers: Sequence[int], widths: Sequence[int],
                 strides: Sequence[int], stride_in_1x1: bool = True) -> tuple[nn.Sequential, int]:
    """Residual stages ``layer1..layerK`` as one ``nn.Sequential``; returns it and its out channels."""
    if not len(layers) == len(widths) == len(strides):
        raise ValueError(f"layers {layers}, widths {widths} and strides {strides} differ in length")
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {sorted(BLOCKS)}, got {block!r}")
    stages = nn.Sequential()
    for i, (n, w, s) in enumerate(zip(layers, widths, strides)):
        stage, in_ch = make_stage(BLOCKS[block], in_ch, w, n, s, stride_in_1x1)
        stages.add_module(f"layer{i + 1}", stage)
    return stages, in_ch


def _rgb_stem(kind: str, in_chans: int, out_ch: int) -> nn.Sequential:
    if kind == "imagenet":  # 7x7/2 convolution + 3x3/2 max pool: stride 4 (He et al. 2016)
        return nn.Sequential(conv_bn_relu(in_chans, out_ch, 7, 2), nn.MaxPool2d(3, 2, 1))
    if kind == "stride8":  # three 3x3/2 convolutions: stride 8, the grid a JPEG block gives
        return nn.Sequential(conv_bn_relu(in_chans, out_ch, 3, 2), conv_bn_relu(out_ch, out_ch, 3, 2),
                             conv_bn_relu(out_ch, out_ch, 3, 2))
    raise ValueError(f"stem must be 'imagenet' or 'stride8', got {kind!r}")


class ResNet(ClassifierNet):
    """ResNet on ``[B, 3, H, W]`` pixels."""

    def __init__(self, block: str = "bottleneck", layers: Sequence[int] = (3, 4, 6, 3),
                 widths: Sequence[int] = (64, 128, 256, 512), strides: Sequence[int] = (1, 2, 2, 2),
                 stem: str = "imagenet", stem_width: int = 64, in_chans: int = 3,
                 num_classes: int = 1000, stride_in_1x1: bool = True, drop_rate: float = 0.0):
        spec = {"input": "rgb", "layout": "rgb", "fbs": None, "channels": in_chans, "stride": 1}
        stages, out_ch = build_stages(block, stem_width, layers, widths, strides, stride_in_1x1)
        super().__init__(num_classes, out_ch, spec, drop_rate)
        self.stem = _rgb_stem(stem, in_chans, stem_width)
        self.stages = stages
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))


@register_model
def resnet50(num_classes: int = 1000, stride_in_1x1: bool = True, drop_rate: float = 0.0) -> ResNet:
    """ResNet-50 on RGB, 25.56M parameters, 3.86 GMACs at 224x224 with the original stride
    placement (``stride_in_1x1=True``), the baseline of Gueguen et al. 2018 and dos Santos et al. 2020."""
    return ResNet("bottleneck", (3, 4, 6, 3), num_classes=num_classes, stride_in_1x1=stride_in_1x1,
                  drop_rate=drop_rate)


@register_model
def resnet18(num_classes: int = 1000, drop_rate: float = 0.0) -> ResNet:
    """ResNet-18 on RGB (11.69M parameters, 1.82 GMACs at 224x224)."""
    return ResNet("basic", (2, 2, 2, 2), num_classes=num_classes, drop_rate=drop_rate)


@register_model
def resnet_rgb_small(num_classes: int = 10, base_width: int = 32, drop_rate: float = 0.0) -> ResNet:
    """RGB counterpart of ``resnet_dct_small`` for small images (64x64 -> 8x8 after the stem).

    A stride-8 stem of three 3x3/2 convolutions to width w = ``base_width``, then the same three
    BasicBlock stages (w-2w-4w, strides 1-2-2) as ``resnet_dct_small``.
    """
    w = base_width
    return ResNet("basic", (1, 1, 1), (w, 2 * w, 4 * w), (1, 2, 2), stem="stride8", stem_width=w,
                  num_classes=num_classes, drop_rate=drop_rate)
