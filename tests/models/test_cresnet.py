"""cResNet as published: the 28x28 layout's cost, and starting it from torchvision resnet50 weights.

torchvision is not a dependency, so the state dict is generated here from torchvision's
``resnet50`` definition (keys and shapes of ``torchvision.models.resnet50().state_dict()``:
stem ``conv1``/``bn1``, ``layer1``..``layer4`` of 3, 4, 6, 3 bottlenecks of widths 64..512 with
a ``downsample`` projection in each first block, ``fc`` 2048 -> 1000), and its stages are
evaluated with a functional copy of torchvision's ``Bottleneck.forward`` (stride on the 3x3).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cdomain.errors import CheckpointError
from cdomain.models import count_macs, create_model

STAGES = [("layer1", 64, 3), ("layer2", 128, 4), ("layer3", 256, 6), ("layer4", 512, 3)]


def resnet50_state_dict(seed: int = 0, num_classes: int = 1000) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def bn(prefix: str, channels: int) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.weight": 1 + 0.1 * torch.randn(channels, generator=g),
            f"{prefix}.bias": 0.1 * torch.randn(channels, generator=g),
            f"{prefix}.running_mean": 0.1 * torch.randn(channels, generator=g),
            f"{prefix}.running_var": 1 + torch.rand(channels, generator=g),
            f"{prefix}.num_batches_tracked": torch.tensor(seed + 7),
        }

    def conv(out_ch: int, in_ch: int, k: int) -> torch.Tensor:
        return torch.randn(out_ch, in_ch, k, k, generator=g) * (2.0 / (in_ch * k * k)) ** 0.5

    state = {"conv1.weight": conv(64, 3, 7), **bn("bn1", 64)}
    in_ch = 64
    for stage, width, blocks in STAGES:
        for b in range(blocks):
            p = f"{stage}.{b}"
            state[f"{p}.conv1.weight"] = conv(width, in_ch, 1)
            state.update(bn(f"{p}.bn1", width))
            state[f"{p}.conv2.weight"] = conv(width, width, 3)
            state.update(bn(f"{p}.bn2", width))
            state[f"{p}.conv3.weight"] = conv(4 * width, width, 1)
            state.update(bn(f"{p}.bn3", 4 * width))
            if b == 0:
                state[f"{p}.downsample.0.weight"] = conv(4 * width, in_ch, 1)
                state.update(bn(f"{p}.downsample.1", 4 * width))
            in_ch = 4 * width
    state["fc.weight"] = 0.01 * torch.randn(num_classes, 2048, generator=g)
    state["fc.bias"] = torch.zeros(num_classes)
    return state


def torchvision_stage(state: dict, stage: str, blocks: int, x: torch.Tensor, stride: int) -> torch.Tensor:
    """torchvision's Bottleneck.forward (v1.5: stride on the 3x3), eval-mode BatchNorm."""

    def bn(prefix, y):
        return F.batch_norm(y, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"],
                            state[f"{prefix}.weight"], state[f"{prefix}.bias"], training=False, eps=1e-5)

    for b in range(blocks):
        p, s = f"{stage}.{b}", stride if b == 0 else 1
        out = F.relu(bn(f"{p}.bn1", F.conv2d(x, state[f"{p}.conv1.weight"])))
        out = F.relu(bn(f"{p}.bn2", F.conv2d(out, state[f"{p}.conv2.weight"], stride=s, padding=1)))
        out = bn(f"{p}.bn3", F.conv2d(out, state[f"{p}.conv3.weight"]))
        identity = x if b else bn(f"{p}.downsample.1", F.conv2d(x, state[f"{p}.downsample.0.weight"], stride=s))
        x = F.relu(out + identity)
    return x


def test_generated_state_dict_is_resnet50_sized():
    # torchvision resnet50: 25,557,032 parameters (+ BatchNorm running statistics and counters)
    state = resnet50_state_dict()
    params = sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var", "tracked")))
    assert params == 25_557_032


def test_cresnet39_macs_by_hand():
    def bottleneck(cin, width, hw, stride=1, project=False):
        out = hw // stride
        macs = cin * width * hw * hw + 9 * width * width * out * out + width * 4 * width * out * out
        return macs + (cin * 4 * width * out * out if project else 0)

    m, hw = 192, 28
    expected = 2 * bottleneck(m, 32, hw, project=True)  # the two entry blocks
    expected += bottleneck(256, 128, 28, project=True) + 3 * bottleneck(512, 128, 28)
    expected += bottleneck(512, 256, 28, 2, project=True) + 5 * bottleneck(1024, 256, 14)
    expected += bottleneck(1024, 512, 14, 2, project=True) + 2 * bottleneck(2048, 512, 7)
    expected += 2048 * 1000
    with torch.device("meta"):
        model = create_model("cresnet39")
        crop = torch.empty(1, m, hw, hw)
        assert count_macs(model, crop, crop) == expected
    assert round(expected / 1e9, 2) == 3.30  # the un-strided conv4_x of before cost 9.5 G


def test_load_backbone_maps_conv3_to_conv5_and_fc():
    torch.manual_seed(0)
    model = create_model("cresnet39").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = resnet50_state_dict()
    report = model.load_backbone(state)
    after = model.state_dict()
    for source, target in (("layer2", "layer3"), ("layer3", "layer4"), ("layer4", "layer5")):
        for key, value in state.items():
            if key.startswith(source + "."):
                assert torch.equal(after[target + key[len(source):]], value), key
    assert torch.equal(after["fc.weight"], state["fc.weight"])
    for key in after:  # the latent entry keeps its initialisation
        if key.startswith(("y_entry", "sigma_entry", "y_norm", "sigma_norm")):
            assert torch.equal(after[key], before[key]) and key in report.kept
    assert "conv1.weight" in report.skipped and "layer1.0.conv1.weight" in report.skipped
    assert not any(k.startswith(("layer3", "layer4", "layer5", "fc")) for k in report.kept)
    # the loaded stages compute what torchvision's layer3 / layer4 compute (stride on the 3x3)
    x = torch.randn(2, 512, 28, 28)
    with torch.no_grad():
        y = model.layer4(x)
        torch.testing.assert_close(y, torchvision_stage(state, "layer3", 6, x, 2))
        torch.testing.assert_close(model.layer5(y), torchvision_stage(state, "layer4", 3, y, 2))


def test_load_backbone_keeps_a_head_of_another_size_and_extra_conv4_blocks():
    model = create_model("cresnet51", num_classes=23)
    head = model.fc.weight.detach().clone()
    report = model.load_backbone(resnet50_state_dict())
    assert "fc.weight" in report.skipped and torch.equal(model.fc.weight, head)
    assert "layer4.6.conv1.weight" in report.kept and "layer4.5.conv1.weight" in report.loaded


def test_load_backbone_errors_name_the_source_and_key():
    model = create_model("cresnet39", num_classes=4)
    state = resnet50_state_dict()
    state["layer3.0.conv2.weight"] = torch.zeros(256, 256, 1, 1)
    with pytest.raises(CheckpointError, match=r"weights.pt: layer3.0.conv2.weight has shape \[256, 256, 1, 1\]"):
        model.load_backbone(state, source="weights.pt")
    partial = {k: v for k, v in resnet50_state_dict().items() if not k.startswith("layer4.")}
    with pytest.raises(CheckpointError, match="no ResNet-50 layer4"):
        model.load_backbone(partial)
    with pytest.raises(CheckpointError, match="mapping"):
        model.load_backbone([1, 2, 3])
    with pytest.raises(CheckpointError, match="no ResNet-50 layer2, layer3, layer4"):
        model.load_backbone(create_model("resnet_dct_small").state_dict())
