"""The artifact corrector: its differentiable decoder against Pillow, its task-input layouts, identity at start."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from cdomain import read_coefficients
from cdomain.data.correction import zigzag_tables
from cdomain.data.dct_transforms import ChannelStats, to_channels
from cdomain.models import InputSpec, create_model, list_models_for
from cdomain.models.artifact import decode_pixels, idct_basis, task_inputs
from tests.helpers import encode, photo_like, psnr


@pytest.fixture
def jpeg_file(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(encode(photo_like(48, 64, seed=3), quality=90, subsampling=2))  # 4:2:0
    return path


def split_batch(path):
    image = read_coefficients(path)
    y, cbcr = to_channels(image, 64, "split")
    return image, torch.from_numpy(y)[None], torch.from_numpy(cbcr)[None], torch.from_numpy(zigzag_tables(image))[None]


def test_idct_basis_is_orthonormal():
    basis = idct_basis().double()
    assert torch.allclose(basis @ basis.T, torch.eye(64, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(basis[0], torch.full((64,), 1 / 8, dtype=torch.float64))  # DC: a flat block of 1/8


def test_decoded_pixels_match_pillow(jpeg_file):
    _, y, cbcr, _ = split_batch(jpeg_file)
    ours = decode_pixels(y, cbcr)[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    with Image.open(io.BytesIO(jpeg_file.read_bytes())) as image:
        reference = np.asarray(image.convert("RGB"))
        luma = np.asarray(image.convert("YCbCr"))[..., 0]
    ours_luma = np.asarray(Image.fromarray(ours).convert("YCbCr"))[..., 0]
    assert ours.shape == reference.shape
    # luma is the same IDCT (Pillow's integer IDCT differs by rounding); colour differs only by
    # Pillow's smoothing ("fancy") chroma upsampling
    assert psnr(ours_luma, luma) > 45
    assert psnr(ours, reference) > 32


def test_task_inputs_match_the_loader_layouts(jpeg_file):
    image, y, cbcr, _ = split_batch(jpeg_file)
    rng = np.random.default_rng(0)
    stats = ChannelStats(rng.normal(size=24), rng.uniform(1, 5, size=24))
    merged = task_inputs(y, cbcr, InputSpec("dct", "merged", 8, 24, 8), stats)[0][0].numpy()
    assert np.allclose(merged, to_channels(image, 8, "merged", stats), atol=1e-4)
    split = task_inputs(y, cbcr, InputSpec("dct", "split", 8, (8, 16), (8, 16)))
    expected = to_channels(image, 8, "split")
    assert np.array_equal(split[0][0].numpy(), expected[0]) and np.array_equal(split[1][0].numpy(), expected[1])


def test_untrained_corrector_is_the_identity_and_learns(jpeg_file):
    torch.manual_seed(0)
    model = create_model("artifact_corrector", width=16, blocks=1, embed=8)
    assert model.input_spec.task == "correction"
    assert "artifact_corrector" not in list_models_for("dct", "classification")
    _, y, cbcr, tables = split_batch(jpeg_file)
    y1, cbcr1 = model(y, cbcr, tables)
    assert torch.equal(y1, y) and torch.equal(cbcr1, cbcr)
    (y1.square().mean() + cbcr1.square().mean()).backward()
    assert model.luma_out.weight.grad.abs().sum() > 0 and model.chroma_out.weight.grad.abs().sum() > 0


def test_corrector_refuses_non_420_grids():
    model = create_model("artifact_corrector", width=8, blocks=1, embed=8)
    with pytest.raises(ValueError, match="4:2:0"):
        model(torch.zeros(1, 64, 4, 4), torch.zeros(1, 128, 4, 4), torch.ones(1, 3, 64))
