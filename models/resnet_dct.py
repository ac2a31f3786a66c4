"""ResNets on JPEG DCT coefficients.

Two families:

``DCTResNet``
    A plain ResNet on the merged layout ``[B, 3n, H/8, W/8]`` with configurable stages, for
    CPU-scale runs (``resnet_dct_small``, ``resnet18_dct``). The 8x8 block grid already has
    stride 8, so there is no pixel stem.

``ResNet50DCT``
    ResNet-50 adapted to DCT input as in Gueguen et al. 2018 ("Faster Neural Networks Straight
    from JPEG") and dos Santos et al. 2020 (frequency band selection, FBS). The stem and the
    56x56 stage are dropped; Y (stride 8) and CbCr (stride 16) enter at 28x28 / 14x14 for a
    224x224 image. The "RFA" (receptive-field-aware) variants first apply three bottleneck
    blocks with 1x1, 2x2 and 3x3 middle kernels at stride 1, so that receptive fields grow
    gradually instead of starting at 8x8 pixels and jumping; the 28x28 stage (conv3_x) then runs
    without its stride. Layer tables follow the public Keras re-implementation of the paper's
    variants (jpeg_deep); they reproduce the published 5.40 GMACs of the 3x64 network.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ClassifierNet, check_fbs
from .blocks import Bottleneck, conv_bn_relu, init_weights, make_stage
from .registry import register_model
from .resnet import build_stages

__all__ = ["DCTResNet", "ResNet50DCT", "VARIANTS", "match_size"]


def match_size(x: Tensor, height: int, width: int) -> Tensor:
    """Crop ``x`` to ``height x width``, or pad it by edge replication where it is smaller.

    Chroma grids of odd-sized images are rounded up or down depending on the loader; this
    makes a 2x upsampled (or 2x subsampled) grid line up with the luma grid either way.
    """
    h, w = x.shape[-2:]
    x = x[..., :height, :width]
    if h < height or w < width:
        x = F.pad(x, (0, max(0, width - w), 0, max(0, height - h)), mode="replicate")
    return x


class DCTResNet(ClassifierNet):
    """Plain ResNet on the merged layout ``[B, 3n, H/8, W/8]``.

    ``entry_width=None`` feeds the 3n channels straight into the first stage; an int adds a 3x3
    convolution to that width first. ``input_norm`` puts a BatchNorm on the raw coefficients,
    whose scale varies by orders of magnitude between the DC and the highest frequencies.
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
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.stages(self.entry(x))


VARIANTS = ("upsampling_rfa", "deconv_rfa", "late_concat_rfa", "late_concat_rfa_thinner")


def _rfa_blocks(in_ch: int, width: int, out_ch: int) -> nn.Sequential:
    """Three stride-1 bottlenecks with 1x1, 2x2, 3x3 middle kernels (Gueguen et al. 2018)."""
    return nn.Sequential(
        Bottleneck(in_ch, width, kernel_size=1, out_ch=out_ch, project=True),
        Bottleneck(out_ch, width, kernel_size=2, out_ch=out_ch),
        Bottleneck(out_ch, width, kernel_size=3, out_ch=out_ch),
    )


def _blocks(in_ch: int, width: int, out_ch: int, n: int, stride: int = 1, project: bool = True) -> nn.Sequential:
    """``n`` bottlenecks to ``out_ch`` channels; the first carries the stride (on its 1x1) and,
    with ``project``, a projection shortcut even where shapes match (a Keras ``conv_block``)."""
    return nn.Sequential(*[
        Bottleneck(in_ch if i == 0 else out_ch, width, stride if i == 0 else 1, out_ch=out_ch,
                   project=project if i == 0 else None)
        for i in range(n)
    ])


class ResNet50DCT(ClassifierNet):
    """ResNet-50 on DCT coefficients: the Gueguen et al. 2018 variants and the FBS network.

    ``variant``:

    ``upsampling_rfa``   CbCr upsampled 2x (nearest) to the luma grid and concatenated with Y
                         (3n channels at 28x28), input BatchNorm, RFA blocks
                         [w, w, 4w] with w = 256 * ``rfa_scale``, conv3_x (4 blocks, stride 1),
                         conv4_x (6, stride 2), conv5_x (3, stride 2). With ``layout="merged"``
                         the input arrives already upsampled (the dos Santos FBS input).
    ``deconv_rfa``       as above, but Cb and Cr are each upsampled by a learned 2x2/2
                         transposed convolution (split layout only).
    ``late_concat_rfa``  Y alone goes through the RFA blocks, conv3_x at 28x28 and one stride-2
                         block to 14x14x512; CbCr goes through one 1x1-kernel bottleneck to
                         14x14x512; the two are concatenated (1024) before the 5 remaining
                         conv4_x blocks and conv5_x (split layout only).
    ``late_concat_rfa_thinner``  the same with a thinner Y path (384 channels, 768 after the
                         stride-2 block) and 256 CbCr channels.

    ``fbs`` n is the number of lowest zigzag frequencies per component (Y n, CbCr 2n channels).
    """

    def __init__(self, fbs: int = 64, variant: str = "late_concat_rfa", layout: str = "split",
                 rfa_scale: float = 1.0, num_classes: int = 1000, drop_rate: float = 0.0):
        check_fbs(fbs)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if layout not in ("split", "merged"):
            raise ValueError(f"layout must be 'split' or 'merged', got {layout!r}")
        if layout == "merged" and variant != "upsampling_rfa":
            raise ValueError(f"variant {variant!r} needs the split layout (separate Y and CbCr grids)")
        if rfa_scale <= 0:
            raise ValueError(f"rfa_scale must be positive, got {rfa_scale}")
        n = fbs
        if layout == "merged":
            spec = {"input": "dct", "layout": "merged", "fbs": n, "channels": 3 * n, "stride": 8}
        else:
            spec = {"input": "dct", "layout": "split", "fbs": n, "channels": (n, 2 * n), "stride": (8, 16)}
        super().__init__(num_classes, 2048, spec, drop_rate)
        self.variant = variant
        self.layout = layout

        if variant in ("upsampling_rfa", "deconv_rfa"):
            if variant == "deconv_rfa":  # one 2x2/2 transposed convolution per chroma component
                self.chroma_up = nn.ConvTranspose2d(2 * n, 2 * n, 2, stride=2, groups=2)
            else:
                self.chroma_up = None
            w = max(1, round(256 * rfa_scale))
            self.input_bn = nn.BatchNorm2d(3 * n)
            self.rfa = _rfa_blocks(3 * n, w, 4 * w)
            self.layer3 = _blocks(4 * w, 128, 512, 4, stride=1)
            self.layer4 = _blocks(512, 256, 1024, 6, stride=2)
        else:
            thin = variant == "late_concat_rfa_thinner"
            y_ch, y_down, c_ch = (384, 768, 256) if thin else (1024, 512, 512)
            y_mid = 384 if thin else 512
            self.y_bn = nn.BatchNorm2d(n)
            self.y_path = nn.Sequential(
                _rfa_blocks(n, 256, y_ch),
                _blocks(y_ch, 128, y_mid, 4, stride=1),
                _blocks(y_mid, 128, y_down, 1, stride=2),
            )
            self.cbcr_bn = nn.BatchNorm2d(2 * n)
            self.cbcr_path = Bottleneck(2 * n, 128, kernel_size=1, out_ch=c_ch, project=True)
            # conv4_x minus its first block: the stride-2 block of the Y path stands in for it
            self.layer4 = _blocks(y_down + c_ch, 256, 1024, 5, stride=1, project=False)
        self.layer5, _ = make_stage(Bottleneck, 1024, 512, 3, stride=2)
        init_weights(self)

    def _merge(self, y: Tensor, cbcr: Tensor) -> Tensor:
        if self.chroma_up is None:
            up = F.interpolate(cbcr, scale_factor=2.0, mode="nearest")
        else:
            up = self.chroma_up(cbcr)
        return torch.cat([y, match_size(up, y.shape[-2], y.shape[-1])], dim=1)

    def forward_features(self, *inputs: Tensor) -> Tensor:
        if self.layout == "merged":
            if len(inputs) != 1:
                raise ValueError(f"merged layout takes one tensor [B, 3n, H/8, W/8], got {len(inputs)}")
            x = inputs[0]
        else:
            if len(inputs) != 2:
                raise ValueError(f"split layout takes (y, cbcr), got {len(inputs)} tensors")
            y, cbcr = inputs
            if self.variant in ("upsampling_rfa", "deconv_rfa"):
                x = self._merge(y, cbcr)
            else:
                yf = self.y_path(self.y_bn(y))
                cf = self.cbcr_path(self.cbcr_bn(cbcr))
                x = torch.cat([yf, match_size(cf, yf.shape[-2], yf.shape[-1])], dim=1)
                return self.layer5(self.layer4(x))
        x = self.layer3(self.rfa(self.input_bn(x)))
        return self.layer5(self.layer4(x))


@register_model
def resnet50_dct_upsampling_rfa(num_classes: int = 1000, fbs: int = 64, drop_rate: float = 0.0) -> ResNet50DCT:
    """Gueguen et al. 2018 UpSampling-RFA on the split layout (y, cbcr).

    At n = 64 this is the "ResNet-50 DCT 3x64" network of dos Santos et al. 2020: 5.40 GMACs.
    """
    return ResNet50DCT(fbs, "upsampling_rfa", "split", num_classes=num_classes, drop_rate=drop_rate)


@register_model
def resnet50_dct_deconv_rfa(num_classes: int = 1000, fbs: int = 64, drop_rate: float = 0.0) -> ResNet50DCT:
    """Gueguen et al. 2018 Deconvolution-RFA (learned 2x chroma upsampling), split layout."""
    return ResNet50DCT(fbs, "deconv_rfa", "split", num_classes=num_classes, drop_rate=drop_rate)


@register_model
def resnet50_dct_lc_rfa(num_classes: int = 1000, fbs: int = 64, drop_rate: float = 0.0) -> ResNet50DCT:
    """Gueguen et al. 2018 Late-Concat-RFA: Y and CbCr meet at 14x14, split layout."""
    return ResNet50DCT(fbs, "late_concat_rfa", "split", num_classes=num_classes, drop_rate=drop_rate)


@register_model
def resnet50_dct_lc_rfa_thinner(num_classes: int = 1000, fbs: int = 64, drop_rate: float = 0.0) -> ResNet50DCT:
    """Gueguen et al. 2018 Late-Concat-RFA-Thinner (the 1.77x faster variant), split layout."""
    return ResNet50DCT(fbs, "late_concat_rfa_thinner", "split", num_classes=num_classes, drop_rate=drop_rate)


@register_model
def resnet50_fbs(num_classes: int = 1000, fbs: int = 32, drop_rate: float = 0.0) -> ResNet50DCT:
    """dos Santos et al. 2020 frequency band selection network on the merged layout [B, 3n, H/8, W/8].

    UpSampling-RFA whose entry (RFA) blocks scale with the input: stage 2 takes the 3n channels
    and has width 4n and 16n output channels ([64, 64, 256], ResNet-50's conv2_x widths, at
    n = 16; [256, 256, 1024] at n = 64), and the first block of every stage has a projection
    shortcut (a Keras ``conv_block``). This layout is inferred from the published complexity
    (3.18 / 3.68 / 5.40 GFLOPs at n = 16 / 32 / 64), which it reproduces within 0.5%; keeping
    the n = 64 widths for every n would give 5.25 / 5.30 GMACs at n = 16 / 32 instead, and
    dropping the shape-preserving projection at n = 32 would give 3.48.
    """
    return ResNet50DCT(fbs, "upsampling_rfa", "merged", rfa_scale=fbs / 64, num_classes=num_classes,
                       drop_rate=drop_rate)


@register_model
def resnet18_dct(num_classes: int = 1000, fbs: int = 32, drop_rate: float = 0.0) -> DCTResNet:
    """ResNet-18 on the merged layout: the stem is dropped and the 3n channels enter the first
    stage directly, whose stride is 1 as is the second's, so the output grid is stride 32 (7x7 at
    224x224) as in ResNet-18."""
    return DCTResNet(fbs, "basic", (2, 2, 2, 2), (64, 128, 256, 512), (1, 1, 2, 2), num_classes=num_classes,
                     drop_rate=drop_rate)


@register_model
def resnet_dct_small(num_classes: int = 10, fbs: int = 16, base_width: int = 32,
                     drop_rate: float = 0.0) -> DCTResNet:
    """Small DCT network for CPU-scale runs on 64x64 images (an 8x8 block grid).

    Input BatchNorm, a 3x3 entry convolution 3n -> w, then three BasicBlock stages w-2w-4w
    (w = ``base_width``) with strides 1-2-2 (8x8 -> 4x4 -> 2x2 for 64x64 pixels); any grid of at
    least 1x1 works. With w = 32 a training step (forward + backward) of 64 samples at n = 16
    takes about 30 ms on two CPU cores; w = 64 about 70 ms.
    """
    w = base_width
    return DCTResNet(fbs, "basic", (1, 1, 1), (w, 2 * w, 4 * w), (1, 2, 2), entry_width=w,
                     num_classes=num_classes, drop_rate=drop_rate)
