"""cResNet: ResNet-50 without its stem and 56x56 stage, fed learned-compression latents.

Torfason et al. 2018 feed the quantised latent of a stride-8 codec (28x28 for a 224x224 image)
into ResNet-50 from conv3_x on ("cResNet-39"; cResNet-51 adds conv4_x blocks). The texture
experiments this follows (Deng & Karam 2021) use CompressAI's bmshj2018 hyperprior: ``y_hat``
(the rounded latent) and ``sigma_hat`` (the scales the hyperprior predicts for it), each
``[B, M, h, w]`` with M = 192 (qualities 1-5) or 320 (qualities 6-8), resized to 32x32 and
cropped to 28x28 (:mod:`cdomain.latents.loader`). Each goes through its own entry bottleneck
[1x1 32, 3x3 32, 1x1 128] and the two are concatenated (256 channels, the channels conv2_x
hands to conv3_x in ResNet-50), as in the layer table of docs/references.md, "Learned latents".

The layout is ResNet-50's from conv3_x on: a 28x28 crop enters at conv3_x's 28x28 grid (its
first block keeps stride 1, since the stem and conv2_x that halved the grid are gone), conv4_x
and conv5_x halve it (14x14, 7x7). Downsampling blocks carry their stride on the 3x3
convolution, as torchvision's ``resnet50`` (and TF-slim's, which the paper used) does, so
:meth:`CResNet.load_backbone` can start conv3_x..conv5_x from ImageNet weights in torchvision's
format. Any latent size works; a 28x28 crop costs 3.30 GMACs at M = 192
(``benchmarks/bench_models.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from cdomain.errors import CheckpointError

from .base import ClassifierNet
from .blocks import Bottleneck, init_weights, make_stage
from .registry import register_model

__all__ = ["CResNet", "SmallLatentNet", "BackboneReport", "RESNET50_STAGES"]

#: Which torchvision ``resnet50`` stage feeds which cResNet stage (conv3_x, conv4_x, conv5_x).
RESNET50_STAGES = {"layer2": "layer3", "layer3": "layer4", "layer4": "layer5"}


@dataclass
class BackboneReport:
    """What :meth:`CResNet.load_backbone` did, key by key (cResNet's names)."""

    loaded: list[str] = field(default_factory=list)
    #: cResNet tensors the state dict has no source for (their initialisation is kept).
    kept: list[str] = field(default_factory=list)
    #: state-dict keys not used: the stem, conv2_x, and ``fc`` when the class count differs.
    skipped: list[str] = field(default_factory=list)


class CResNet(ClassifierNet):
    """cResNet on ``(y_hat, sigma_hat)``, each ``[B, M, h, w]`` (28x28 crops as published).

    ``conv4_blocks``: 6 for cResNet-39, 10 for cResNet-51 (12 more layers).
    ``input_norm``: BatchNorm on each raw latent first; the scales span orders of magnitude.
    """

    def __init__(self, latent_channels: int = 192, conv4_blocks: int = 6, num_classes: int = 1000,
                 input_norm: bool = True, drop_rate: float = 0.0):
        if isinstance(latent_channels, bool) or not isinstance(latent_channels, int) or latent_channels < 1:
            raise ValueError(f"latent_channels (M) must be a positive int (192 or 320 for bmshj2018), "
                             f"got {latent_channels!r}")
        m = latent_channels
        spec = {"input": "latent", "layout": "latent", "fbs": None, "channels": (m, m), "stride": (16, 16)}
        super().__init__(num_classes, 2048, spec, drop_rate)
        norm = (lambda: nn.BatchNorm2d(m)) if input_norm else nn.Identity
        self.y_norm, self.sigma_norm = norm(), norm()
        self.y_entry = Bottleneck(m, 32, project=True)  # conv2_x [32, 32, 128], one per input
        self.sigma_entry = Bottleneck(m, 32, project=True)
        self.layer3, ch = make_stage(Bottleneck, 256, 128, 4, stride=1, stride_in_1x1=False)
        self.layer4, ch = make_stage(Bottleneck, ch, 256, conv4_blocks, stride=2, stride_in_1x1=False)
        self.layer5, ch = make_stage(Bottleneck, ch, 512, 3, stride=2, stride_in_1x1=False)
        init_weights(self)

    def forward_features(self, y_hat: Tensor, sigma_hat: Tensor) -> Tensor:
        if y_hat.shape != sigma_hat.shape:
            raise ValueError(f"y_hat {tuple(y_hat.shape)} and sigma_hat {tuple(sigma_hat.shape)} differ in shape")
        x = torch.cat([self.y_entry(self.y_norm(y_hat)), self.sigma_entry(self.sigma_norm(sigma_hat))], dim=1)
        return self.layer5(self.layer4(self.layer3(x)))

    def load_backbone(self, state_dict: Mapping[str, object], source: str = "resnet50 state dict") -> BackboneReport:
        """Start conv3_x..conv5_x (and ``fc``, where the class count matches) from a torchvision
        ``resnet50`` state dict, as the texture experiments started from ImageNet weights.

        torchvision's ``layer2``/``layer3``/``layer4`` become ``layer3``/``layer4``/``layer5``
        here, with the same block and parameter names (BatchNorm running statistics included).
        The stem (``conv1``, ``bn1``) and ``layer1`` (conv2_x) have no counterpart and are
        skipped, as is ``fc`` when its shape differs (another number of classes); the latent
        entry blocks and input norms keep their initialisation, and so do the conv4_x blocks
        past the sixth (cResNet-51), which ResNet-50 does not have. Raises
        :class:`~cdomain.errors.CheckpointError` naming ``source`` and the key when a tensor's
        shape differs or the state dict lacks a ResNet-50 stage. Returns a :class:`BackboneReport`.
        """
        if not isinstance(state_dict, Mapping):
            raise CheckpointError(f"{source}: expected a mapping of parameter names to tensors, "
                                  f"got {type(state_dict).__name__}")
        own = self.state_dict()
        report = BackboneReport()
        found = set()
        updates: dict[str, Tensor] = {}
        for key, value in state_dict.items():
            stage, _, rest = str(key).partition(".")
            target = f"{RESNET50_STAGES[stage]}.{rest}" if stage in RESNET50_STAGES else key if stage == "fc" else None
            if target is None or target not in own:
                report.skipped.append(key)
                continue
            try:
                tensor = torch.as_tensor(value)
            except (TypeError, ValueError, RuntimeError):
                raise CheckpointError(f"{source}: {key} is not a tensor ({type(value).__name__})") from None
            if tuple(tensor.shape) != tuple(own[target].shape):
                if stage == "fc":
                    report.skipped.append(key)
                    continue
                raise CheckpointError(
                    f"{source}: {key} has shape {list(tensor.shape)}, but cResNet's {target} is "
                    f"{list(own[target].shape)}; is this a torchvision resnet50 state dict?")
            updates[target] = tensor
            found.add(stage)
        missing = [stage for stage in RESNET50_STAGES if stage not in found]
        if missing:
            raise CheckpointError(f"{source}: no ResNet-50 {', '.join(missing)} tensors "
                                  f"(expected torchvision resnet50 keys such as {missing[0]}.0.conv1.weight)")
        with torch.no_grad():
            for target, tensor in updates.items():
                own[target].copy_(tensor.to(dtype=own[target].dtype))
        report.loaded = sorted(updates)
        report.kept = sorted(key for key in own if key not in updates)
        return report


@register_model
def cresnet39(num_classes: int = 1000, latent_channels: int = 192, drop_rate: float = 0.0) -> CResNet:
    """cResNet-39 on bmshj2018 hyperprior latents (M = 192: qualities 1-5, 320: 6-8)."""
    return CResNet(latent_channels, 6, num_classes=num_classes, drop_rate=drop_rate)


@register_model
def cresnet51(num_classes: int = 1000, latent_channels: int = 192, drop_rate: float = 0.0) -> CResNet:
    """cResNet-51: cResNet-39 with 4 more conv4_x blocks (10 instead of 6)."""
    return CResNet(latent_channels, 10, num_classes=num_classes, drop_rate=drop_rate)


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
