"""Registry behaviour, configuration round trips and the contract of the CPU-scale networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cdomain.checkpoint import load_checkpoint, read_header, save_checkpoint
from cdomain.errors import CheckpointError
from cdomain.models import (
    InputSpec,
    create_model,
    is_model,
    list_models,
    list_models_for,
    model_config,
    register_model,
)

REQUIRED = {
    "resnet50", "resnet50_dct_lc_rfa", "resnet50_dct_upsampling_rfa", "resnet50_dct_deconv_rfa",
    "resnet50_fbs", "resnet18_dct", "resnet_dct_small", "resnet_rgb_small", "cresnet39", "cresnet51",
    "cresnet_small",
}


def test_required_entry_points_are_registered():
    assert REQUIRED <= set(list_models())
    assert list_models("cresnet*") == ["cresnet39", "cresnet51", "cresnet_small"]
    assert is_model("resnet50") and not is_model("resnet51")


def test_list_models_for_input_and_task():
    assert list_models_for("latent") == ["cresnet39", "cresnet51", "cresnet_small"]
    assert list_models_for("rgb") == ["resnet18", "resnet50", "resnet_rgb_small"]
    assert list_models_for("rgb", "density") == ["csrnet", "csrnet_small", "sasnet", "sasnet_small"]
    assert list_models_for("dct", "density") == ["csrnet_dct", "csrnet_dct_small"]
    assert list_models_for("latent", "density") == []
    assert list_models_for("rgb", "segmentation") == ["unet_small"]
    assert list_models_for("dct", "segmentation") == ["unet_dct_small"]
    dct = list_models_for("dct", "classification")
    assert {"resnet_dct_small", "resnet18_dct", "resnet50_fbs", "resnet50_dct_lc_rfa"} <= set(dct)
    assert "csrnet_dct_small" not in dct and "resnet_rgb_small" not in dct
    # Every registered model is listed under exactly one (input, task) pair.
    assert list_models_for("dct", "correction") == ["artifact_corrector"]
    pairs = [(i, t) for i in ("dct", "rgb", "latent") for t in ("classification", "density", "segmentation", "correction")]
    listed = [name for i, t in pairs for name in list_models_for(i, t)]
    assert sorted(listed) == list_models()
    for name in listed:
        with torch.device("meta"):
            spec = create_model(name).input_spec
        assert name in list_models_for(spec.input, spec.task)


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="unknown model 'resnet51'.*resnet50"):
        create_model("resnet51")


def test_fbs_is_rejected_for_rgb_and_latent_models():
    with pytest.raises(ValueError, match="does not take DCT input"):
        create_model("resnet_rgb_small", fbs=16)
    with pytest.raises(ValueError, match="does not take DCT input"):
        create_model("cresnet39", fbs=16)


@pytest.mark.parametrize("fbs", [0, 65, -1, 16.0, "16", True])
def test_invalid_fbs(fbs):
    with pytest.raises(ValueError, match="fbs"):
        create_model("resnet_dct_small", fbs=fbs)


def test_fbs_none_means_the_default():
    assert create_model("resnet_dct_small", fbs=None).input_spec["fbs"] == 16
    assert create_model("resnet_rgb_small", fbs=None).input_spec["fbs"] is None


def test_unknown_argument():
    with pytest.raises(ValueError, match="unknown argument.*'widht'"):
        create_model("resnet_dct_small", widht=3)


def test_duplicate_registration_is_an_error():
    def resnet50():  # same name as the registered entry point
        return nn.Identity()

    with pytest.raises(ValueError, match="already registered"):
        register_model(resnet50)


def test_model_config_rebuilds_the_model():
    model = create_model("resnet_dct_small", num_classes=7, fbs=8)
    config = model_config(model)
    assert config == {"name": "resnet_dct_small", "num_classes": 7, "fbs": 8, "base_width": 32, "drop_rate": 0.0}
    rebuilt = create_model(**config)
    assert rebuilt.input_spec == model.input_spec
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_reset_classifier():
    model = create_model("resnet_dct_small").eval()
    x = model.example_inputs(3, 64)[0]
    model.reset_classifier(5)
    assert model(x).shape == (3, 5) and model_config(model)["num_classes"] == 5
    model.reset_classifier(0)
    assert model(x).shape == (3, model.num_features)
    with pytest.raises(ValueError):
        model.reset_classifier(-1)


def test_slice_default_network_contract():
    """The default network of the CPU-scale runs: merged layout, n = 16, 10 classes, 64x64 images."""
    model = create_model("resnet_dct_small", num_classes=10, fbs=16)
    assert model.input_spec == InputSpec(input="dct", layout="merged", fbs=16, channels=48, stride=8,
                                         task="classification", output_stride=None)
    assert model.num_classes == 10
    model.train()
    out = model(torch.randn(64, 48, 8, 8))
    assert out.shape == (64, 10)
    model.eval()
    for grid in [(1, 1), (3, 5), (28, 28)]:
        assert model(torch.randn(2, 48, *grid)).shape == (2, 10)


def test_rgb_small_counterpart():
    model = create_model("resnet_rgb_small", num_classes=10).eval()
    assert model.input_spec["layout"] == "rgb"
    assert model.forward_features(torch.randn(2, 3, 64, 64)).shape[-2:] == (2, 2)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_checkpoint_keeps_configuration_and_input_spec(tmp_path):
    model = create_model("resnet_dct_small", fbs=4, drop_rate=0.1)
    model.reset_classifier(3)
    path = save_checkpoint(tmp_path / "sub" / "m.safetensors", model, classes=("a", "b", "c"))
    assert [p.name for p in path.parent.iterdir()] == ["m.safetensors"]  # no temporary left over
    header = read_header(path)
    assert header.kind == "model" and header.name == "resnet_dct_small" and header.task == "classification"
    assert header.input_spec == model.input_spec
    assert header.input_spec == InputSpec("dct", "merged", 4, 12, 8)
    assert header.args["num_classes"] == 3 and header.args["fbs"] == 4 and header.classes == ("a", "b", "c")
    restored = load_checkpoint(path).model
    assert restored.num_classes == 3 and restored.drop_rate == 0.1
    assert model_config(restored) == model_config(model)


def test_read_header_errors(tmp_path):
    from safetensors.torch import save_file

    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(bare))
    with pytest.raises(CheckpointError, match="bare.safetensors.*no cdomain header"):
        read_header(bare)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        read_header(junk)
