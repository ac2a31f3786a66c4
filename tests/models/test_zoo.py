"""Invariants every registered classifier satisfies; the registry is the test matrix.

Networks with another head (``input_spec["task"]`` other than ``"classification"``, e.g. density
maps) are left to their own tests.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from cdomain.checkpoint import load_checkpoint, read_header, save_checkpoint
from cdomain.models import InputSpec, count_params, create_model, list_models, model_config

from .conftest import built, inputs_for

# Parameter counts at each entry point's default arguments (these are exact; a change here is
# an architecture change). Where a publication states a count, it is given beside ours; the
# published counts are rounded to 0.1M and come from Keras models, whose "total params" also
# include convolution biases and BatchNorm running statistics (ResNet-50: 25,636,712).
EXPECTED_PARAMS = {
    # He et al. 2016 / torchvision: 25.6M published.
    "resnet50": 25_557_032,
    # He et al. 2016 / torchvision ResNet-18: 11.7M.
    "resnet18": 11_689_512,
    # ResNet-18 minus its 7x7 stem (-9,408), first block 96 -> 64 with a projection (+6,272 + BN).
    "resnet18_dct": 11_704_872,
    # dos Santos et al. 2020, "ResNet-50 DCT 3x64": 28.4M published (Keras count of ours: 28.40M).
    "resnet50_dct_upsampling_rfa": 28_308_840,
    # UpSampling-RFA plus two 64->64 2x2 transposed convolutions with bias (+32,896).
    "resnet50_dct_deconv_rfa": 28_341_736,
    # Gueguen et al. 2018 Late-Concat-RFA (no published count; docs/references.md, "Networks on DCT coefficients").
    "resnet50_dct_lc_rfa": 27_342_184,
    "resnet50_dct_lc_rfa_thinner": 25_885_800,
    # dos Santos et al. 2020 "DCT+FBS 3x32" (the default n = 32): 26.2M published (Keras: 26.20M).
    "resnet50_fbs": 26_119_848,
    # cResNet-39/51 on M = 192 latents: ResNet-50 minus the stem and conv2_x, two entry blocks.
    "cresnet39": 25_421_800,
    "cresnet51": 29_890_536,
    # CPU-scale networks, 10 classes.
    "resnet_dct_small": 321_706,
    "resnet_rgb_small": 327_210,
    # Latent counterpart, M = 192, w = 32: two (BN(M) + 3x3 M->w + BN(w)) entries (2 x 55,744),
    # 3x3 2w->2w and 2w->4w with BN (36,992 + 73,984) and the 4w->10 classifier (1,290).
    "cresnet_small": 223_754,
}

# Other published configurations checked beside the defaults.
EXPECTED_PARAMS_WITH_ARGS = [
    ("resnet50_fbs", {"fbs": 64}, 28_308_840),  # 28.4M published (3x64)
    ("resnet50_fbs", {"fbs": 16}, 25_489_224),  # 25.6M published (3x16); Keras count 25.57M
    ("cresnet39", {"latent_channels": 320}, 25_463_272),
]

def _task(name: str) -> str:
    with torch.device("meta"):  # shapes only, no initialisation
        return create_model(name).input_spec.get("task", "classification")


MODELS = [name for name in list_models() if _task(name) == "classification"]


def _loss(model, inputs, seed=1):
    out = model(*inputs)
    target = torch.randint(0, model.num_classes, (out.shape[0],), generator=torch.Generator().manual_seed(seed))
    return F.cross_entropy(out, target)


def test_every_classifier_has_a_stated_parameter_count():
    assert sorted(EXPECTED_PARAMS) == MODELS


@pytest.mark.parametrize("name", MODELS)
def test_parameter_count(name):
    assert count_params(built(name)) == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name, kwargs, expected", EXPECTED_PARAMS_WITH_ARGS)
def test_parameter_count_with_arguments(name, kwargs, expected):
    with torch.device("meta"):  # shapes only, no initialisation
        model = create_model(name, **kwargs)
    assert count_params(model) == expected


@pytest.mark.parametrize("name", MODELS)
def test_input_spec(name):
    model = built(name)
    spec = model.input_spec
    assert isinstance(spec, InputSpec)
    assert set(spec.as_dict()) == {"input", "layout", "fbs", "channels", "stride", "task", "output_stride"}
    assert spec.task == "classification" and spec.output_stride is None
    assert spec["layout"] in {"rgb", "merged", "split", "latent"}
    assert spec.stride is not None and spec.channels is not None
    if spec["input"] == "dct":
        assert isinstance(spec["fbs"], int)
        n = spec["fbs"]
        assert spec["channels"] == (3 * n if spec["layout"] == "merged" else (n, 2 * n))
    else:
        assert spec["fbs"] is None
    assert model_config(model)["name"] == name


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_finite(name):
    model = built(name).eval()
    inputs = inputs_for(model)
    with torch.no_grad():
        features = model.forward_features(*inputs)
        logits = model.forward_head(features)
        pooled = model.forward_head(features, pre_logits=True)
    assert features.ndim == 4 and features.shape[1] == model.num_features
    assert logits.shape == (4, model.num_classes)
    assert pooled.shape == (4, model.num_features)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_gradient_and_a_few_steps_reduce_the_loss(name):
    """One test, so the first step's backward pass serves both checks (CPU time)."""
    model = copy.deepcopy(built(name)).train()
    inputs = inputs_for(model, batch_size=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for step in range(3):
        opt.zero_grad(set_to_none=True)
        loss = _loss(model, inputs)
        loss.backward()
        if step == 0:
            missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
            assert not missing, f"no gradient for {missing[:5]}"
            assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = _loss(model, inputs).item()
    assert final < losses[0], losses + [final]


@pytest.mark.parametrize("name", MODELS)
def test_safetensors_round_trip(name, tmp_path):
    model = built(name).eval()
    classes = tuple(f"class{i}" for i in range(model.num_classes))
    path = save_checkpoint(tmp_path / f"{name}.safetensors", model, classes=classes, info={"epoch": 3})
    header = read_header(path)
    assert (header.kind, header.name, header.task) == ("model", name, "classification")
    loaded = load_checkpoint(path)
    restored = loaded.model.eval()
    inputs = inputs_for(model, batch_size=2, seed=3)
    with torch.no_grad():
        assert torch.equal(model(*inputs), restored(*inputs))
    assert restored.input_spec == model.input_spec and loaded.input_spec == model.input_spec
    assert model_config(restored) == model_config(model)
    assert loaded.classes == classes and loaded.info == {"epoch": 3} and loaded.stats is None


@pytest.mark.parametrize("name", MODELS)
def test_output_grid_at_224(name):
    """Every network ends on ResNet-50's 7x7 grid (stride 32) at 224x224, whatever the stride of
    its input; shapes only, on the meta device. cResNet reads the published 28x28 latent crops
    (latents resized to 32x32 whatever the image size), which enter at conv3_x's 28x28 grid."""
    with torch.device("meta"):
        model = create_model(name)
        if name.startswith("cresnet") and name != "cresnet_small":
            inputs = tuple(torch.empty(1, c, 28, 28) for c in model.input_spec["channels"])
        else:
            inputs = model.example_inputs(1, 224)
        features = model.forward_features(*inputs)
    # (the small networks end at stride 32 as well: 28x28 blocks, strides 1-2-2 -> 7x7)
    assert tuple(features.shape[-2:]) == (7, 7)
    assert features.shape[1] == model.num_features


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_full_resolution_training_step(name):
    model = copy.deepcopy(built(name)).train()
    inputs = model.example_inputs(2, 224, generator=torch.Generator().manual_seed(0))
    loss = _loss(model, inputs)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
