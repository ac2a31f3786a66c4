"""The interface every cdomain classifier shares, and the description of its input.

Each model exposes ``forward_features`` (inputs -> last feature map), ``forward_head``
(feature map -> logits, or pooled features with ``pre_logits=True``), ``reset_classifier`` and
``input_spec``, an :class:`~cdomain.models.spec.InputSpec` that says which tensors ``forward``
takes (input kind, layout, FBS size, channels, stride, task).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .spec import InputSpec

__all__ = ["ClassifierNet", "check_fbs", "example_inputs"]


def check_fbs(fbs: int, allowed: tuple[int, ...] | None = None) -> int:
    """Validate a frequency band selection size n (1..64 coefficients of the 8x8 DCT)."""
    if isinstance(fbs, bool) or not isinstance(fbs, int) or not 1 <= fbs <= 64:
        raise ValueError(f"fbs must be an int in 1..64 (coefficients kept per 8x8 block), got {fbs!r}")
    if allowed is not None and fbs not in allowed:
        raise ValueError(f"fbs must be one of {allowed} for this model, got {fbs}")
    return fbs


class ClassifierNet(nn.Module):
    """Base class: global average pooling and a linear classifier over ``forward_features``."""

    input_spec: InputSpec
    num_features: int

    def __init__(self, num_classes: int, num_features: int, input_spec: dict | InputSpec, drop_rate: float = 0.0):
        super().__init__()
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0 removes the classifier), got {num_classes}")
        self.input_spec = input_spec if isinstance(input_spec, InputSpec) else InputSpec(**input_spec)
        self.num_features = num_features
        self.drop_rate = drop_rate
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.num_classes = num_classes
        self.fc = self._make_fc(num_classes)

    def _make_fc(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one (0 leaves pooled features)."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = num_classes
        self.fc = self._make_fc(num_classes)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def forward_features(self, *inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x).flatten(1)
        if self.drop_rate > 0:
            x = nn.functional.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(*inputs))

    def example_inputs(self, batch_size: int = 2, image_size: int | tuple[int, int] = 224,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        return example_inputs(self.input_spec, batch_size, image_size, generator)


def example_inputs(spec: InputSpec, batch_size: int = 2, image_size: int | tuple[int, int] = 224,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """Random tensors shaped as ``spec`` expects for an ``image_size`` pixel image.

    Grids are rounded up (a partial 8x8 block or latent position still exists), never below 1.
    """
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    channels = spec["channels"]
    strides = spec["stride"]
    channels = (channels,) if isinstance(channels, int) else tuple(channels)
    strides = (strides,) * len(channels) if isinstance(strides, int) else tuple(strides)
    return tuple(
        torch.randn(batch_size, c, max(1, math.ceil(h / s)), max(1, math.ceil(w / s)), generator=generator)
        for c, s in zip(channels, strides)
    )
