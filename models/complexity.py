"""Parameter and multiply-accumulate (MAC) counts, measured with forward hooks.

Convention: one MAC is one multiplication plus one addition of a convolution or linear layer;
biases, normalisation, activations, pooling and residual additions are not counted. This is
the convention of the ResNet paper's "FLOPs" (He et al. 2016: 3.8 x 10^9 for ResNet-50), and of
the GFLOPs tables of Gueguen et al. 2018 and dos Santos et al. 2020 (ResNet-50: 3.86).
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

__all__ = ["count_macs", "count_params", "macs_by_module"]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    x = inputs[0]
    batch = x.shape[0]
    if isinstance(module, nn.ConvTranspose2d):
        # every input position scatters a kh x kw x (out/groups) patch
        kh, kw = module.kernel_size
        return x.numel() // batch * (module.out_channels // module.groups) * kh * kw
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() // batch * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return output.numel() // batch * module.in_features
    return 0


def macs_by_module(model: nn.Module, *inputs: torch.Tensor) -> dict[str, int]:
    """MACs per sample of each Conv2d / ConvTranspose2d / Linear module for one forward pass."""
    counts: dict[str, int] = defaultdict(int)
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            def hook(mod, inp, out, name=name):
                counts[name] += _macs(mod, inp, out)
            handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return dict(counts)


def count_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Total MACs per sample for one forward pass on ``inputs``."""
    return sum(macs_by_module(model, *inputs).values())
