"""--init-backbone: torchvision-format VGG-16 state dicts (generated here, nothing downloaded)
read from .safetensors or weights-only .pth, loaded into CSRNet's front end, and clear errors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from cdomain.errors import CheckpointError
from cdomain.models import create_model
from cdomain.models.backbone import read_state_dict

#: torchvision's VGG-16 configuration "D": channels, "M" a max-pool (each conv is followed by a ReLU).
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16_features(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The ``features.N.*`` tensors of torchvision's ``vgg16()`` state dict: keys and shapes."""
    state, index, channels = {}, 0, 3
    for layer in VGG16:
        if layer == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(layer, channels, 3, 3, generator=generator)
        state[f"features.{index}.bias"] = torch.randn(layer, generator=generator)
        channels, index = layer, index + 2  # the conv and its ReLU
    return state


@pytest.fixture(scope="module")
def vgg_state():
    return vgg16_features(torch.Generator().manual_seed(0))


def test_torchvision_indices_of_the_ten_front_end_convolutions(vgg_state):
    convs = sorted(int(key.split(".")[1]) for key in vgg_state if key.endswith(".weight"))
    assert convs[:10] == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21]  # conv1_1 .. conv4_3 in torchvision's vgg16


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_csrnet_front_end_loads_vgg16(tmp_path, vgg_state, suffix):
    path = tmp_path / f"vgg16{suffix}"
    if suffix == ".safetensors":
        save_file(vgg_state, str(path))
    else:
        torch.save(vgg_state, path)
    state = read_state_dict(path)
    model = create_model("csrnet")  # the published network, without BatchNorm
    back_before = [p.clone() for p in model.backend.parameters()]
    assert model.load_backbone(state) == 20
    convs = [m for m in model.frontend.modules() if isinstance(m, torch.nn.Conv2d)]
    for conv, index in zip(convs, [0, 2, 5, 7, 10, 12, 14, 17, 19, 21]):
        assert torch.equal(conv.weight, vgg_state[f"features.{index}.weight"])
        assert torch.equal(conv.bias, vgg_state[f"features.{index}.bias"])
    assert all(torch.equal(a, b) for a, b in zip(back_before, model.backend.parameters()))


def test_shapes_and_variants_that_do_not_fit(vgg_state):
    with pytest.raises(ValueError, match=r"features.0.weight has shape \(64, 3, 3, 3\)"):
        create_model("csrnet", width=32).load_backbone(vgg_state)
    with pytest.raises(ValueError, match="without BatchNorm"):
        create_model("csrnet", batch_norm=True).load_backbone(vgg_state)
    with pytest.raises(ValueError, match="DCT-input"):
        create_model("csrnet_dct_small").load_backbone(vgg_state)
    with pytest.raises(ValueError, match="expected a torchvision vgg16"):
        create_model("csrnet").load_backbone({"conv.weight": torch.zeros(1, 1, 3, 3)})


class Foreign:
    """An object a weights-only load must refuse."""


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "absent.pth")
    with pytest.raises(CheckpointError, match="must end in"):
        read_state_dict(tmp_path / "vgg16.bin")
    pickled = tmp_path / "foreign.pth"
    torch.save({"features.0.weight": Foreign()}, pickled)
    with pytest.raises(CheckpointError, match="foreign.pth: not a plain PyTorch state dict"):
        read_state_dict(pickled)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="garbage.safetensors: not a readable safetensors file"):
        read_state_dict(garbage)
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(CheckpointError, match="not a state dict"):
        read_state_dict(listed)


def test_a_malicious_backbone_file_runs_no_code(tmp_path):
    from tests.security.test_run_folders import malicious_pickle

    marker = tmp_path / "MARKER"
    path = tmp_path / "vgg16.pth"
    path.write_bytes(malicious_pickle(marker))
    with pytest.raises(CheckpointError, match="vgg16.pth: not a plain PyTorch state dict"):
        read_state_dict(path)
    assert not marker.exists()
