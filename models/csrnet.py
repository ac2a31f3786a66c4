"""CSRNet density-map networks for crowd counting, on RGB pixels and on JPEG DCT coefficients.

CSRNet (Li, Zhang and Chen, CVPR 2018, "CSRNet: Dilated Convolutional Neural Networks for
Understanding the Highly Congested Scenes"), configuration B: the front end is VGG-16's first
ten 3x3 convolutions with three 2x2 max-pools (conv1_1 ... conv4_3, output stride 8); the back
end is six 3x3 convolutions with dilation 2 (512, 512, 512, 256, 128, 64 channels) that widen
the receptive field without further pooling; a 1x1 convolution gives one density value per
8x8-pixel cell. The predicted count is the sum of the map. ``csrnet`` is the published network
(no BatchNorm, 16.26M parameters); its front end loads torchvision ``vgg16`` weights from a
local file (:meth:`CSRNet.load_backbone`, ``--init-backbone``), as the paper initialises it.

On DCT input (merged layout ``[B, 3n, H/8, W/8]``), the 8x8 block transform already puts the
image on the stride-8 grid, so the part of the front end that only exists to get there
(conv1_x to conv3_x and the pools) is dropped, as ResNet-50-DCT drops ResNet's stem (Gueguen
et al. 2018): a BatchNorm on the coefficients, whose scales differ by orders of magnitude
between frequencies, then ``dct_depth`` 3x3 convolutions at the width of conv4_x, then the same
back end.

``width`` scales every layer (64 is the published network; the ``_small`` variants use 16 for
CPU runs). The output is the raw 1x1 convolution, as in CSRNet: trained against non-negative
density maps it learns to be non-negative, but nothing forces it; counts are sums of the raw
map. RGB inputs whose sides are not multiples of 8 give ``floor(side / 8)`` cells.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from .base import check_fbs, example_inputs
from .blocks import conv_bn_relu, init_weights
from .registry import register_model
from .spec import InputSpec

__all__ = ["CSRNet", "FRONTEND", "BACKEND"]

#: VGG-16 conv1_1 .. conv4_3 ("M": 2x2 max-pool, stride 2), CSRNet's front end.
FRONTEND: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)
#: CSRNet's back end (configuration B: every layer dilated by 2).
BACKEND: tuple[int, ...] = (512, 512, 512, 256, 128, 64)

OUTPUT_STRIDE = 8


def _conv(in_ch: int, out_ch: int, dilation: int, batch_norm: bool) -> nn.Module:
    if batch_norm:
        return conv_bn_relu(in_ch, out_ch, 3, 1, dilation)
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True))


def _scaled(channels: int, width: int) -> int:
    return max(1, channels * width // 64)


class CSRNet(nn.Module):
    """CSRNet on RGB pixels (``input="rgb"``) or merged DCT coefficients (``input="dct"``).

    ``forward(x)`` gives ``[B, 1, H/8, W/8]`` density maps; ``forward_features`` the back end's
    feature map and ``forward_head`` the 1x1 output layer, the interface the classifiers share.
    ``input_spec`` carries ``task="density"`` and ``output_stride=8``.
    """

    def __init__(self, input: str = "rgb", fbs: int | None = None, width: int = 64, batch_norm: bool = True,
                 dct_depth: int = 3, dilation: int = 2, frontend: Sequence[int | str] = FRONTEND,
                 backend: Sequence[int] = BACKEND):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        if dct_depth < 1:
            raise ValueError(f"dct_depth must be >= 1, got {dct_depth}")
        if input == "rgb":
            if fbs is not None:
                raise ValueError("fbs applies to DCT input only")
            if sum(1 for layer in frontend if layer == "M") != 3:
                raise ValueError("the RGB front end needs exactly three max-pools (output stride 8)")
            spec = {"input": "rgb", "layout": "rgb", "fbs": None, "channels": 3, "stride": 1}
            layers: list[nn.Module] = []
            in_ch = 3
            for layer in frontend:
                if layer == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    out_ch = _scaled(int(layer), width)
                    layers.append(_conv(in_ch, out_ch, 1, batch_norm))
                    in_ch = out_ch
        elif input == "dct":
            fbs = check_fbs(fbs)
            spec = {"input": "dct", "layout": "merged", "fbs": fbs, "channels": 3 * fbs, "stride": 8}
            in_ch = 3 * fbs
            out_ch = _scaled(int([layer for layer in frontend if layer != "M"][-1]), width)
            layers = [nn.BatchNorm2d(in_ch)]
            for _ in range(dct_depth):
                layers.append(_conv(in_ch, out_ch, 1, batch_norm))
                in_ch = out_ch
        else:
            raise ValueError(f"input must be 'rgb' or 'dct', got {input!r}")
        self.input_spec = InputSpec(**spec, task="density", output_stride=OUTPUT_STRIDE)
        self.frontend = nn.Sequential(*layers)
        back: list[nn.Module] = []
        for channels in backend:
            out_ch = _scaled(channels, width)
            back.append(_conv(in_ch, out_ch, dilation, batch_norm))
            in_ch = out_ch
        self.backend = nn.Sequential(*back)
        self.num_features = in_ch
        self.output_layer = nn.Conv2d(in_ch, 1, 1)
        init_weights(self)
        nn.init.normal_(self.output_layer.weight, std=0.01)  # CSRNet's initialisation of its layers

    def load_backbone(self, state: Mapping[str, Tensor]) -> int:
        """Copy a torchvision ``vgg16`` state dict's first ten convolutions (conv1_1 .. conv4_3,
        ``features.N.weight`` / ``.bias`` in index order) into the front end; returns the number
        of tensors copied. ValueError says which key or shape does not fit."""
        from .backbone import load_vgg16_convs

        if self.input_spec.input != "rgb":
            raise ValueError("the DCT-input CSRNet has no VGG-16 front end to initialise")
        return load_vgg16_convs([m for m in self.frontend.modules() if isinstance(m, nn.Conv2d)], state)

    def forward_features(self, *inputs: Tensor) -> Tensor:
        if len(inputs) != 1:
            raise ValueError(f"CSRNet takes one input tensor ({self.input_spec['layout']} layout), got {len(inputs)}")
        return self.backend(self.frontend(inputs[0]))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.output_layer(x)

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(*inputs))

    def example_inputs(self, batch_size: int = 2, image_size: int | tuple[int, int] = 224,
                       generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
        return example_inputs(self.input_spec, batch_size, image_size, generator)


@register_model
def csrnet(width: int = 64, batch_norm: bool = False) -> CSRNet:
    """CSRNet-B on RGB as published (Li et al. 2018): no BatchNorm, 16.26M parameters, front end
    initialised from ImageNet VGG-16 with ``--init-backbone``. ``batch_norm=True`` trains from scratch."""
    return CSRNet("rgb", width=width, batch_norm=batch_norm)


@register_model
def csrnet_small(width: int = 16, batch_norm: bool = True) -> CSRNet:
    """CSRNet-B at a quarter of the width (16-32-64-128 front end, 128..16 back end) for CPU runs."""
    return CSRNet("rgb", width=width, batch_norm=batch_norm)


@register_model
def csrnet_dct(fbs: int = 32, width: int = 64, batch_norm: bool = True, dct_depth: int = 3) -> CSRNet:
    """CSRNet-B on merged DCT input: coefficient BatchNorm, ``dct_depth`` 3x3 convolutions at
    conv4_x's width on the block grid, then CSRNet's dilated back end."""
    return CSRNet("dct", fbs=fbs, width=width, batch_norm=batch_norm, dct_depth=dct_depth)


@register_model
def csrnet_dct_small(fbs: int = 16, width: int = 16, batch_norm: bool = True, dct_depth: int = 3) -> CSRNet:
    """``csrnet_dct`` at a quarter of the width, the DCT counterpart of ``csrnet_small``."""
    return CSRNet("dct", fbs=fbs, width=width, batch_norm=batch_norm, dct_depth=dct_depth)
