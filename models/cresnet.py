"""cResNet: ResNet-50 without its stem and 56x56 stage, fed learned-compression latents.

Torfason et al. 2018 feed the quantised latent of a stride-8 codec (28x28 for a 224x224 image)
into ResNet-50 from conv3_x on ("cResNet-39"; cResNet-51 adds conv4_x blocks). Here the input is
CompressAI's bmshj2018 hyperprior: ``y_hat`` (the rounded latent) and ``sigma_hat`` (the scales
the hyperprior predicts for it), each ``[B, M, H/16, W/16]`` with M = 192 (qualities 1-5) or
320 (qualities 6-8). Each goes through its own entry bottleneck [32, 32, 128] and the two are
concatenated (256 channels), as in the layer table of docs/references.md, "Learned latents".

Stride 16 vs stride 8 (``adapt``):

``"stride"`` (default)  the latents enter at their own 14x14 grid and conv4_x's first block
    keeps stride 1, so conv3_x and conv4_x both run at 14x14 and conv5_x halves to 7x7: the same
    final grid (stride 32) and the same conv4_x/conv5_x cost as the stride-8 design; conv3_x
    costs a quarter, and its receptive field in pixels is twice the designed one.
``"upsample"``  the latents are repeated 2x (nearest) to the stride-8 grid the network was
    designed for and the layer strides are kept (conv3 28x28, conv4 14x14, conv5 7x7). No new
    information, about 1.3x the MACs of ``"stride"`` (3.14 vs 2.38 G at M = 192); the layout of the published texture
    experiments, which resized latents to 32x32 and cropped 28x28.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ClassifierNet
from .blocks import Bottleneck, init_weights, make_stage
from .registry import register_model

__all__ = ["CResNet", "SmallLatentNet", "ADAPTATIONS"]

ADAPTATIONS = ("stride", "upsample")


class CResNet(ClassifierNet):
    """cResNet on ``(y_hat, sigma_hat)``, each ``[B, M, h, w]``.

    ``conv4_blocks``: 6 for cResNet-39, 10 for cResNet-51 (12 more layers).
    ``input_norm``: BatchNorm on each raw latent first; the scales span orders of magnitude.
    """

    def __init__(self, latent_channels: int = 192, conv4_blocks: int = 6, adapt: str = "stride",
                 num_classes: int = 1000, input_norm: bool = True, drop_rate: float = 0.0):
        if isinstance(latent_channels, bool) or not isinstance(latent_channels, int) or latent_channels < 1:
            raise ValueError(f"latent_channels (M) must be a positive int (192 or 320 for bmshj2018), "
                             f"got {latent_channels!r}")
        if adapt not in ADAPTATIONS:
            raise ValueError(f"adapt must be one of {ADAPTATIONS}, got {adapt!r}")
        m = latent_channels
        spec = {"input": "latent", "layout": "latent", "fbs": None, "channels": (m, m), "stride": (16, 16)}
        super().__init__(num_classes, 2048, spec, drop_rate)
        self.adapt = adapt
        norm = (lambda: nn.BatchNorm2d(m)) if input_norm else nn.Identity
        self.y_norm, self.sigma_norm = norm(), norm()
        self.y_entry = Bottleneck(m, 32, project=True)  # conv2_x [32, 32, 128], one per input
        self.sigma_entry = Bottleneck(m, 32, project=True)
        stage4_stride = 1 if adapt == "stride" else 2
        self.layer3, ch = make_stage(Bottleneck, 256, 128, 4, stride=1)
        self.layer4, ch = make_stage(Bottleneck, ch, 256, conv4_blocks, stride=stage4_stride)
        self.layer5, ch = make_stage(Bottleneck, ch, 512, 3, stride=2)
        init_weights(self)

    def forward_features(self, y_hat: Tensor, sigma_hat: Tensor) -> Tensor:
        if y_hat.shape != sigma_hat.shape:
            raise ValueError(f"y_hat {tuple(y_hat.shape)} and sigma_hat {tuple(sigma_hat.shape)} differ in shape")
        if self.adapt == "upsample":
            y_hat = F.interpolate(y_hat, scale_factor=2.0, mode="nearest")
            sigma_hat = F.interpolate(sigma_hat, scale_factor=2.0, mode="nearest")
        x = torch.cat([self.y_entry(self.y_norm(y_hat)), self.sigma_entry(self.sigma_norm(sigma_hat))], dim=1)
        return self.layer5(self.layer4(self.layer3(x)))


@register_model
def cresnet39(num_classes: int = 1000, latent_channels: int = 192, adapt: str = "stride",
              drop_rate: float = 0.0) -> CResNet:
    """cResNet-39 on bmshj2018 hyperprior latents (M = 192: qualities 1-5, 320: 6-8)."""
    return CResNet(latent_channels, 6, adapt, num_classes=num_classes, drop_rate=drop_rate)


@register_model
def cresnet51(num_classes: int = 1000, latent_channels: int = 192, adapt: str = "stride",
              drop_rate: float = 0.0) -> CResNet:
    """cResNet-51: cResNet-39 with 4 more conv4_x blocks (10 instead of 6)."""
    return CResNet(latent_channels, 10, adapt, num_classes=num_classes, drop_rate=drop_rate)


class SmallLatentNet(ClassifierNet):
    """A small network on ``(y_hat, sigma_hat)`` for CPU-scale runs (the latent counterpart of
    ``resnet_dct_small``): input BatchNorm per latent, a 3x3 entry convolution M -> w for each,
    concatenated, then two 3x3 convolutions 2w -> 2w (stride 1) and 2w -> 4w (stride 2)."""

    def __init__(self, latent_channels: int = 192, width: int = 32, num_classes: int = 10, drop_rate: float = 0.0):
        if isinstance(latent_channels, bool) or not isinstance(latent_channels, int) or latent_channels < 1:
            raise ValueError(f"latent_channels (M) must be a positive int, got {latent_channels!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        m, w = latent_channels, width
        spec = {"input": "latent", "layout": "latent", "fbs": None, "channels": (m, m), "stride": (16, 16)}
        super().__init__(num_classes, 4 * w, spec, drop_rate)

        def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.y_entry = nn.Sequential(nn.BatchNorm2d(m), conv(m, w))
        self.sigma_entry = nn.Sequential(nn.BatchNorm2d(m), conv(m, w))
        self.body = nn.Sequential(conv(2 * w, 2 * w), conv(2 * w, 4 * w, stride=2))
        init_weights(self)

    def forward_features(self, y_hat: Tensor, sigma_hat: Tensor) -> Tensor:
        if y_hat.shape != sigma_hat.shape:
            raise ValueError(f"y_hat {tuple(y_hat.shape)} and sigma_hat {tuple(sigma_hat.shape)} differ in shape")
        return self.body(torch.cat([self.y_entry(y_hat), self.sigma_entry(sigma_hat)], dim=1))


@register_model
def cresnet_small(num_classes: int = 10, latent_channels: int = 192, width: int = 32,
                  drop_rate: float = 0.0) -> SmallLatentNet:
    """Small latent classifier for CPU-scale runs and tests (see :class:`SmallLatentNet`)."""
    return SmallLatentNet(latent_channels, width, num_classes=num_classes, drop_rate=drop_rate)
