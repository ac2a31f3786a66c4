"""Architecture details: published complexity, layouts, odd grids, the MAC counter."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cdomain.models import count_macs, count_params, create_model
from cdomain.models.blocks import Bottleneck
from cdomain.models.resnet_dct import ResNet50DCT

# dos Santos et al. 2020 (Table "complexity", 224x224): GFLOPs counted as multiply-accumulates of
# convolutions and the classifier (ResNet-50: 3.86), parameters in millions.
PUBLISHED = [
    ("resnet50", {}, 3.86, 25.6),
    ("resnet50_fbs", {"fbs": 64}, 5.40, 28.4),
    ("resnet50_fbs", {"fbs": 32}, 3.68, 26.2),
    ("resnet50_fbs", {"fbs": 16}, 3.18, 25.6),
]


def _meta_model(name, **kwargs):
    with torch.device("meta"):  # shapes only: counting needs no arithmetic
        return create_model(name, **kwargs)


@pytest.mark.parametrize("name, kwargs, gmacs, mparams", PUBLISHED)
def test_published_complexity_within_two_percent(name, kwargs, gmacs, mparams):
    model = _meta_model(name, **kwargs)
    with torch.device("meta"):
        inputs = model.example_inputs(1, 224)
    assert count_macs(model, *inputs) / 1e9 == pytest.approx(gmacs, rel=0.02)
    assert count_params(model) / 1e6 == pytest.approx(mparams, rel=0.02)


def test_mac_counter_on_known_layers():
    net = nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1),  # 10x10 outputs x 8 x (4 x 3 x 3) = 28,800
        nn.ConvTranspose2d(8, 6, 2, stride=2, groups=2),  # 10x10 inputs x 8 x (6/2 x 2 x 2) = 9,600
        nn.Flatten(),
        nn.Linear(6 * 20 * 20, 5),  # 2,400 x 5 = 12,000
    )
    assert count_macs(net, torch.randn(3, 4, 10, 10)) == 28_800 + 9_600 + 12_000


def test_split_and_merged_layouts_agree():
    """UpSampling-RFA on (y, cbcr) equals the same weights on the merged tensor the loaders build
    (chroma repeated 2x2 onto the luma grid)."""
    torch.manual_seed(0)
    split = ResNet50DCT(4, "upsampling_rfa", "split", num_classes=3).eval()
    with torch.device("meta"):
        merged = ResNet50DCT(4, "upsampling_rfa", "merged", num_classes=3)
    merged.load_state_dict(split.state_dict(), assign=True)
    merged.eval()
    y, cbcr = torch.randn(2, 4, 4, 4), torch.randn(2, 8, 2, 2)
    x = torch.cat([y, cbcr.repeat_interleave(2, -2).repeat_interleave(2, -1)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(split(y, cbcr), merged(x))
    with pytest.raises(ValueError, match="split layout takes"):
        split(x)
    with pytest.raises(ValueError, match="merged layout takes"):
        merged(y, cbcr)


@pytest.mark.parametrize("variant", ["upsampling_rfa", "deconv_rfa", "late_concat_rfa"])
@pytest.mark.parametrize("chroma", [3, 4])  # a 7x7 luma grid: chroma rounded down or up
def test_odd_grids(variant, chroma):
    with torch.device("meta"):  # shapes only
        model = ResNet50DCT(2, variant, "split", num_classes=3).eval()
        out = model(torch.randn(1, 2, 7, 7), torch.randn(1, 4, chroma, chroma))
    assert out.shape == (1, 3)


def test_invalid_variant_combinations():
    with pytest.raises(ValueError, match="split layout"):
        ResNet50DCT(8, "late_concat_rfa", "merged")
    with pytest.raises(ValueError, match="variant"):
        ResNet50DCT(8, "early_concat")


def test_even_kernel_keeps_the_grid():
    block = Bottleneck(8, 4, kernel_size=2, out_ch=8).eval()
    assert block(torch.randn(1, 8, 5, 6)).shape == (1, 8, 5, 6)


@pytest.mark.parametrize("m", [192, 320])
def test_cresnet_latent_grids(m):
    with torch.device("meta"):  # shapes only
        model = create_model("cresnet39", num_classes=4, latent_channels=m)
        y_hat, sigma_hat = model.example_inputs(1, 224)
        crop = torch.empty(1, m, 28, 28)  # the published 28x28 latent crop
        grids = [model.layer3(torch.cat([model.y_entry(crop), model.sigma_entry(crop)], 1))]
        grids += [model.layer4(grids[0]), model.forward_features(crop, crop)]
    assert model.input_spec["channels"] == (m, m)
    assert y_hat.shape == (1, m, 14, 14)  # bmshj2018: stride 16
    # conv3_x at the crop's 28x28 grid, conv4_x and conv5_x halve it: the ResNet-50 output grid
    assert [tuple(g.shape[1:]) for g in grids] == [(512, 28, 28), (1024, 14, 14), (2048, 7, 7)]


def test_cresnet_m320_forward_and_errors():
    model = create_model("cresnet39", num_classes=4, latent_channels=320).eval()
    y_hat, sigma_hat = model.example_inputs(2, 64)
    with torch.no_grad():
        assert model(y_hat, sigma_hat).shape == (2, 4)
        with pytest.raises(ValueError, match="differ in shape"):
            model(y_hat, sigma_hat[..., :1])
    with pytest.raises(ValueError, match="latent_channels"):
        create_model("cresnet39", latent_channels=0)
    with pytest.raises(ValueError, match="adapt"):  # the old stride-16 adaptation is gone
        create_model("cresnet39", adapt="upsample")
