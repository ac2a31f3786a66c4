"""SASNet (Song et al. 2021): the published structure, the stride-8 output, scale selection as a
per-block convex combination of the levels, the PRA region search by hand, the VGG-16 encoder
loading torchvision weights, and training steps that reduce the loss."""

from __future__ import annotations

import pytest
import torch

from cdomain.models import create_model
from cdomain.models.sasnet import SASNet, pra_mask
from cdomain.train.engine import TASKS, Learner, OptimConfig, run_epoch

from .test_backbone import vgg16_features


def test_structure_as_published():
    with torch.device("meta"):
        model = create_model("sasnet")
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.encoder.modules()) == 4
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.encoder.modules())
    assert len(model.density_heads) == len(model.confidence_heads) == 5
    decoded = [head[1].in_channels // 4 for head in model.density_heads]
    assert decoded == [512, 256, 128, 64, 64]  # the decoder's output channels, coarsest first
    assert model.input_spec.task == "density" and model.input_spec.output_stride == 8


@pytest.mark.parametrize("size", [(64, 96), (48, 80)])
def test_output_is_on_the_stride_8_grid(size):
    model = create_model("sasnet_small", width=4).eval()
    out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 1, size[0] // 8, size[1] // 8)


def test_selection_is_a_per_block_convex_combination_of_the_levels():
    """With every level's density head predicting a constant c_l, the output lies between the
    smallest and largest c_l and is constant inside each 32-px block."""
    torch.manual_seed(0)
    model = create_model("sasnet_small", width=4).eval()
    for value, head in zip([1.0, 2.0, 3.0, 4.0, 5.0], model.density_heads):
        torch.nn.init.zeros_(head[1].weight)
        torch.nn.init.constant_(head[1].bias, value)
    out = model(torch.randn(1, 3, 64, 64))[0, 0]
    assert (out > 1.0).all() and (out < 5.0).all()
    blocks = out.reshape(2, 4, 2, 4)  # 8x8 cells, 4x4 per 32-px block
    assert torch.allclose(blocks, blocks[:, :1, :, :1].expand_as(blocks))


def test_pra_region_search_by_hand():
    target = torch.zeros(1, 1, 8, 8)
    error = torch.zeros(1, 1, 8, 8)
    error[0, 0, 5, 2] = 3.0  # the worst error sits in the bottom-left quadrant, then its top-right...
    mask = pra_mask(error, target, levels=2)
    expected = torch.zeros(1, 1, 8, 8)
    expected[0, 0, 4:6, 2:4] = 1.0  # quadrant rows 4..7 / cols 0..3, then rows 4..5 / cols 2..3
    assert torch.equal(mask, expected)
    assert pra_mask(error, target, levels=0).sum() == 64  # no search: the whole map


def test_extra_loss_weights_the_hardest_region():
    model = SASNet(width=4, pra_weight=2.0, pra_levels=1)
    pred, target = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    pred[0, 0, 0, 0] = 1.0  # top-left quadrant is the hardest; its squared error is 1
    assert model.extra_loss(pred, target).item() == pytest.approx(2.0 * 1.0 / 2)
    assert SASNet(width=4, pra_weight=0.0).extra_loss(pred, target).item() == 0.0


def test_encoder_loads_torchvision_vgg16():
    state = vgg16_features(torch.Generator().manual_seed(1))
    model = create_model("sasnet")
    assert model.load_backbone(state) == 26
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert torch.equal(convs[-1].weight, state["features.28.weight"])  # conv5_3
    with pytest.raises(ValueError, match="without BatchNorm"):
        create_model("sasnet_small").load_backbone(state)


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = create_model("sasnet_small", width=4)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(2, 3, 32, 32, generator=generator)
    targets = torch.rand(2, 1, 4, 4, generator=generator) * 0.3
    learner = Learner(model, TASKS["counting"], OptimConfig("adamw", lr=3e-3, weight_decay=0.0, warmup_epochs=0),
                      steps_per_epoch=3, epochs=1000, device=torch.device("cpu"))
    losses = [run_epoch(learner, [(inputs, targets)] * 3, training=True)[0]["loss"] for _ in range(4)]
    assert losses[-1] < 0.5 * losses[0], losses
