"""Residual building blocks shared by the RGB, DCT and latent networks."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BasicBlock", "Bottleneck", "make_stage", "conv_bn_relu", "init_weights"]


def conv_bn_relu(in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Convolution ("same" padding for odd kernels, also when dilated), BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding=dilation * (kernel_size // 2), dilation=dilation,
                  bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def _shortcut(in_ch: int, out_ch: int, stride: int, force: bool = False) -> nn.Module | None:
    if stride == 1 and in_ch == out_ch and not force:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (He et al. 2016, ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1, stride_in_1x1: bool = False):
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_ch, out_ch, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> kxk -> 1x1 with 4x expansion by default (He et al. 2016, ResNet-50).

    ``stride_in_1x1=True`` puts the stride on the first 1x1 convolution as in the original
    network and in Keras' ResNet50 (3.86 GMACs at 224x224); ``False`` puts it on the 3x3
    ("v1.5", torchvision and timm, 4.09 GMACs). ``kernel_size`` other than 3 (with stride 1) is
    used by the receptive-field-aware entry blocks of Gueguen et al. 2018 (kernels 1, 2, 3);
    even kernels pad one extra row/column at the bottom/right, as TensorFlow's "same" does.
    ``out_ch`` overrides the 4x expansion (the "Thinner" variants). ``project=True`` gives the
    shortcut a 1x1 convolution even when the shapes already match, as Keras' ``conv_block`` (the
    first block of every stage there) always does; ``None`` adds one only where needed.
    """

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, stride_in_1x1: bool = True,
                 kernel_size: int = 3, out_ch: int | None = None, project: bool | None = None):
        super().__init__()
        out_ch = width * self.expansion if out_ch is None else out_ch
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        if kernel_size % 2 == 0 and s3 != 1:
            raise ValueError("an even middle kernel needs stride 1 on the middle convolution")
        # even kernels: pad (k-1)//2 before and the rest after, as TensorFlow's "same" does
        before = (kernel_size - 1) // 2
        self.pad = None if kernel_size % 2 else (before, kernel_size - 1 - before) * 2
        self.conv1 = nn.Conv2d(in_ch, width, 1, s1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size, s3, kernel_size // 2 if self.pad is None else 0,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_ch, out_ch, stride, force=bool(project))
        self.out_ch = out_ch

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        if self.pad is not None:
            out = F.pad(out, self.pad)
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def make_stage(block: type[nn.Module], in_ch: int, width: int, blocks: int, stride: int = 1,
               stride_in_1x1: bool = True) -> tuple[nn.Sequential, int]:
    """``blocks`` residual blocks; the first one carries the stride. Returns (stage, out channels)."""
    layers = []
    for i in range(blocks):
        layers.append(block(in_ch, width, stride if i == 0 else 1, stride_in_1x1=stride_in_1x1))
        in_ch = width * block.expansion
    return nn.Sequential(*layers), in_ch


def init_weights(module: nn.Module) -> None:
    """He initialisation for convolutions, unit/zero BatchNorm, default Linear."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
