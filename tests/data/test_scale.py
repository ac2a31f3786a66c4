"""The RandomResizedCrop-like ``scale`` range of DCTLoader / RGBLoader and ``--scale``."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from cdomain import DCTLoader, read_coefficients
from cdomain.data.dct_transforms import downscale_image, random_scaled_region, scale_factors, to_channels
from cdomain.data.loader import RGBLoader
from cdomain.errors import ConfigError
from cdomain.train import TrainConfig
from tests.helpers import encode, photo_like, psnr


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Six 4:2:0 files of 64x64 px (a 32 px crop fits factors 1 and 2) and two of 128x160."""
    root = tmp_path_factory.mktemp("scale")
    samples = []
    for i in range(8):
        size = (64, 64) if i < 6 else (128, 160)
        path = root / f"image{i}.jpg"
        path.write_bytes(encode(photo_like(*size, seed=i), 90, subsampling=2))
        samples.append((str(path), i % 2))
    return samples


def test_scale_factors():
    assert scale_factors(None) == (1,)
    assert scale_factors((1, 4)) == (1, 2, 4)
    assert scale_factors((2, 3)) == (2,)
    for bad in ((3, 3), (0, 2), (4, 1), (1,), "1,4"):
        with pytest.raises(ValueError, match="scale"):
            scale_factors(bad)


def test_region_factor_fits_the_image_and_the_output_is_the_crop(files):
    small = read_coefficients(files[0][0])  # 64x64: factors 1 and 2 fit a 32 px crop, 4 does not
    large = read_coefficients(files[6][0])  # 128x160: all three fit
    seen = {"small": set(), "large": set()}
    for seed in range(40):
        for name, image in (("small", small), ("large", large)):
            out, region = random_scaled_region(image, (32, 32), np.random.default_rng(seed), (1, 4))
            assert (out.height, out.width) == (32, 32) and out.y.shape[:2] == (4, 4) and out.cb.shape[:2] == (2, 2)
            assert region.height == region.width and region.height in (32, 64, 128)
            assert region.top % 16 == 0 and region.left % 16 == 0
            assert 0 <= region.top <= image.height - region.height and 0 <= region.left <= image.width - region.width
            seen[name].add(region.height // 32)
    assert seen == {"small": {1, 2}, "large": {1, 2, 4}}


def test_loader_sample_is_the_dct_downscale_of_its_region(files):
    # 64x64 images, crop 32, factor 2: the region is the whole image
    loader = DCTLoader(files[:6], batch_size=6, fbs=6, crop=32, scale=(2, 2), augment=True, flip=False, shuffle=False)
    inputs, _ = next(iter(loader))
    assert inputs.shape == (6, 18, 4, 4)
    for k, (path, _) in enumerate(files[:6]):
        expected = to_channels(downscale_image(read_coefficients(path), 2), 6)
        np.testing.assert_array_equal(inputs[k].numpy(), expected)


def test_rgb_loader_sees_the_same_downscale(files):
    loader = RGBLoader(files[:6], batch_size=6, crop=32, scale=(2, 2), augment=True, flip=False, shuffle=False)
    inputs, _ = next(iter(loader))
    assert inputs.shape == (6, 3, 32, 32)
    for k, (path, _) in enumerate(files[:6]):
        with open(path, "rb") as handle:
            expected = np.asarray(Image.open(io.BytesIO(handle.read())).convert("RGB").reduce(2))
        got = inputs[k].numpy().transpose(1, 2, 0).astype(np.uint8)
        assert psnr(got, expected) >= 30.0  # measured 33-36 dB (requantization and colour order)


def test_scaled_batches_are_seeded_and_eval_is_not_rescaled(files):
    def batches(seed, **options):
        loader = DCTLoader(files, batch_size=4, fbs=3, crop=32, seed=seed, **options)
        return [x.clone() for x, _ in loader]

    first, again, other = batches(3, scale=(1, 4), augment=True), batches(3, scale=(1, 4), augment=True), batches(
        4, scale=(1, 4), augment=True)
    assert all(x.shape == (4, 9, 4, 4) for x in first)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    plain = batches(3, augment=True)
    assert not all(torch.equal(a, b) for a, b in zip(first, plain))
    # evaluation crops are centred and not rescaled, with or without a scale range
    assert all(torch.equal(a, b) for a, b in zip(batches(3, scale=(1, 4), augment=False), batches(3, augment=False)))
    # (1, 1) is the plain crop, drawing the same random numbers
    assert all(torch.equal(a, b) for a, b in zip(batches(3, scale=(1, 1), augment=True), plain))


def test_loader_rejects_a_scale_without_crop_or_factor(files):
    with pytest.raises(ValueError, match="needs crop"):
        DCTLoader(files, batch_size=2, scale=(1, 2))
    with pytest.raises(ValueError, match="scale"):
        DCTLoader(files, batch_size=2, crop=32, scale=(3, 3))


def test_train_config_scale():
    assert TrainConfig().scale == (1, 1)
    assert TrainConfig(scale="1,4", crop=32).scale == (1, 4)
    with pytest.raises(ConfigError, match="scale"):
        TrainConfig(scale=(1, 4))  # no crop
    with pytest.raises(ConfigError, match="scale"):
        TrainConfig(scale=(3, 3), crop=32)
    with pytest.raises(ConfigError, match="scale"):
        TrainConfig(scale=(1, 2, 4), crop=32)
    with pytest.raises(ConfigError, match="scale"):
        TrainConfig(scale=(1, 2), crop=32, task="counting")


def test_cdomain_train_with_scale(tmp_path, capsys, monkeypatch):
    from cdomain.cli import train

    seen = []
    original = random_scaled_region

    def spy(image, crop, rng, scale, small="pad"):
        out, region = original(image, crop, rng, scale, small)
        seen.append(region.height // crop[0])
        return out, region

    monkeypatch.setattr("cdomain.data.loader.random_scaled_region", spy)
    output = tmp_path / "run"
    argv = ["--data", "textures-tiny", "--epochs", "1", "--batch-size", "16", "--fbs", "4", "--crop", "16",
            "--scale", "1,4", "--stats-images", "8", "--quiet", "--output", str(output)]
    assert train.main(argv) == 0
    assert set(seen) == {1, 2}  # 32 px images: a 16 px crop fits factors 1 and 2
    assert "scale:\n- 1\n- 4" in (output / "config.yaml").read_text()
    assert train.main(["--data", "textures-tiny", "--scale", "1,4", "--quiet"]) == 2
    assert "--scale" in capsys.readouterr().err


@pytest.mark.parametrize("requant", [False, True])
def test_batch_path_gives_the_per_sample_scaled_tensors(files, requant):
    from cdomain.data.quality import RandomQuality

    options = dict(batch_size=4, fbs=8, crop=32, scale=(1, 4), augment=True, seed=3, layout="split")
    if requant:
        options["transform"] = RandomQuality(20, 60, "dct")
    per_sample, batched = DCTLoader(files, **options), DCTLoader(files, device="cpu", **options)
    compared = 0
    for _ in range(2):
        for (a, la), (b, lb) in zip(per_sample, batched, strict=True):
            for x, y in zip(a, b, strict=True):
                assert torch.equal(x, y)
            assert torch.equal(la, lb)
            compared += 1
    assert compared == 4
