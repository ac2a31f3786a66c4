"""CSRNet density networks: the published size, output grids, gradients, training, checkpoints.

The registry-wide tests cover classifiers; these cover every registered density network
(``input_spec["task"] == "density"``) in the same way.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from cdomain.data.dct_transforms import ChannelStats
from cdomain.checkpoint import load_checkpoint, read_header, save_checkpoint
from cdomain.models import InputSpec, count_params, create_model, list_models, model_config
from cdomain.models.csrnet import CSRNet

from .conftest import built, inputs_for


def _task(name: str) -> str:
    with torch.device("meta"):  # shapes only, no initialisation
        return create_model(name).input_spec.get("task", "classification")


DENSITY_MODELS = [name for name in list_models("csrnet*") if _task(name) == "density"]

EXPECTED_PARAMS = {
    # Li et al. 2018: 16.26M published for CSRNet (no BatchNorm).
    "csrnet": 16_263_489,  # the published network (no BatchNorm), the default
    # The DCT front end: BN(3n) and three 3x3 convolutions at conv4_x's width (n = 32 / 16).
    "csrnet_dct": 13_794_433,
    "csrnet_small": 1_018_849,
    "csrnet_dct_small": 891_217,
}


def test_the_four_entry_points_are_the_density_models():
    assert sorted(EXPECTED_PARAMS) == DENSITY_MODELS


@pytest.mark.parametrize("name", DENSITY_MODELS)
def test_parameter_count(name):
    assert count_params(built(name)) == EXPECTED_PARAMS[name]


def test_published_csrnet_size():
    with torch.device("meta"):
        model = create_model("csrnet", batch_norm=False)
    assert count_params(model) == 16_263_489  # 16.26M (Li et al. 2018, Table "parameters")
    convs = [m for m in model.backend.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [512, 512, 512, 256, 128, 64]
    assert all(c.dilation == (2, 2) and c.padding == (2, 2) for c in convs)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.frontend) == 3


@pytest.mark.parametrize("name", DENSITY_MODELS)
def test_input_spec(name):
    model = built(name)
    spec = model.input_spec
    assert spec["task"] == "density" and spec["output_stride"] == 8
    if spec["input"] == "dct":
        assert spec["layout"] == "merged" and spec["channels"] == 3 * spec["fbs"] and spec["stride"] == 8
    else:
        assert spec == InputSpec(input="rgb", layout="rgb", fbs=None, channels=3, stride=1,
                                 task="density", output_stride=8)
    assert model_config(model)["name"] == name


@pytest.mark.parametrize("name", DENSITY_MODELS)
def test_output_is_one_map_per_8x8_cell(name):
    model = built(name).eval()
    size = 64 if count_params(model) < 2_000_000 else 32
    with torch.no_grad():
        features = model.forward_features(*inputs_for(model))
        out = model(*inputs_for(model))
    assert features.shape == (4, model.num_features, size // 8, size // 8)
    assert out.shape == (4, 1, size // 8, size // 8) and torch.isfinite(out).all()


def test_rgb_and_dct_networks_share_the_output_grid():
    rgb, dct = built("csrnet_small").eval(), built("csrnet_dct_small").eval()
    with torch.no_grad():
        for height, width in [(64, 64), (48, 80), (16, 128)]:
            expected = (1, 1, height // 8, width // 8)
            assert rgb(torch.randn(1, 3, height, width)).shape == expected
            assert dct(torch.randn(1, 48, height // 8, width // 8)).shape == expected
        assert dct(torch.randn(1, 48, 7, 5)).shape == (1, 1, 7, 5)  # any block grid
        assert rgb(torch.randn(1, 3, 60, 44)).shape == (1, 1, 7, 5)  # floor(side / 8)


@pytest.mark.parametrize("name", DENSITY_MODELS)
def test_every_parameter_gets_a_gradient_and_a_few_steps_reduce_the_loss(name):
    model = copy.deepcopy(built(name)).train()
    inputs = inputs_for(model, batch_size=4)
    with torch.no_grad():
        grid = model(*inputs).shape
    target = torch.rand(grid, generator=torch.Generator().manual_seed(1)) * 0.5
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step in range(3):
        opt.zero_grad(set_to_none=True)
        loss = (model(*inputs) - target).pow(2).sum() / 8
        loss.backward()
        if step == 0:
            missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
            assert not missing, f"no gradient for {missing[:5]}"
            assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = ((model(*inputs) - target).pow(2).sum() / 8).item()
    assert final < losses[0], losses + [final]


@pytest.mark.parametrize("name", DENSITY_MODELS)
def test_safetensors_round_trip(name, tmp_path):
    model = built(name).eval()
    path = save_checkpoint(tmp_path / f"{name}.safetensors", model)
    header = read_header(path)
    assert (header.kind, header.name, header.task, header.classes) == ("model", name, "density", ())
    loaded = load_checkpoint(path)
    restored = loaded.model.eval()
    inputs = inputs_for(model, batch_size=2, seed=3)
    with torch.no_grad():
        assert torch.equal(model(*inputs), restored(*inputs))
    assert restored.input_spec == model.input_spec and model_config(restored) == model_config(model)
    assert loaded.input_spec == model.input_spec and loaded.stats is None


def test_training_checkpoint_keeps_arguments_and_stats(tmp_path):
    model = create_model("csrnet_dct_small", fbs=4, width=8).eval()
    stats = ChannelStats(torch.arange(12.0).numpy(), torch.ones(12).numpy())
    path = save_checkpoint(tmp_path / "model.safetensors", model, stats=stats, info={"task": "counting"})
    restored = load_checkpoint(path)
    assert model_config(restored.model) == {"name": "csrnet_dct_small", "fbs": 4, "width": 8, "batch_norm": True,
                                            "dct_depth": 3}
    assert restored.stats.fbs == 4 and restored.info == {"task": "counting"}
    np.testing.assert_array_equal(restored.stats.mean, stats.mean)
    np.testing.assert_array_equal(restored.stats.std, stats.std)
    assert restored.input_spec == InputSpec("dct", "merged", 4, 12, 8, "density", 8)
    x = torch.randn(2, 12, 3, 4)
    with torch.no_grad():
        assert torch.equal(model(x), restored.model.eval()(x))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="does not take DCT input"):
        create_model("csrnet_small", fbs=16)
    with pytest.raises(ValueError, match="fbs"):
        create_model("csrnet_dct_small", fbs=0)
    with pytest.raises(ValueError, match="unknown argument"):
        create_model("csrnet_small", num_classes=10)
    with pytest.raises(ValueError, match="width"):
        CSRNet("rgb", width=0)
    with pytest.raises(ValueError, match="input"):
        CSRNet("latent")
    with pytest.raises(ValueError, match="one input tensor"):
        built("csrnet_dct_small")(torch.randn(1, 48, 2, 2), torch.randn(1, 48, 2, 2))
