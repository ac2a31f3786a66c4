"""Latent shards: write/read round trip, resume after an interrupted run, LatentLoader batches."""

from __future__ import annotations

import json

import pytest
import torch

from tests.latents import require_compressai

require_compressai()

from cdomain.data.folder import resolve_source  # noqa: E402
from cdomain.latents import cache as cache_module  # noqa: E402
from cdomain.latents.cache import CacheError, LatentCache, read_index, write_latents  # noqa: E402
from cdomain.latents.encode import encode  # noqa: E402
from cdomain.latents.images import load_rgb  # noqa: E402
from cdomain.latents.loader import LatentLoader  # noqa: E402
from cdomain.models import InputSpec  # noqa: E402

DATA = "textures-tiny"  # 80 train / 40 val images of 32x32 (padded to 64x64: 4x4 latents)


def test_round_trip(tmp_path, codec):
    index = write_latents(codec, DATA, tmp_path / "val", split="val", shard_size=16, progress=False)
    assert index["complete"] and index["num_samples"] == 40
    assert [entry["count"] for entry in index["shards"]] == [16, 16, 8]
    assert index["bpp"] > 0 and index["likelihood_bpp"] > 0
    cache = LatentCache(tmp_path / "val")
    samples = resolve_source(DATA, "val")
    assert len(cache) == 40 and cache.classes == samples.classes and cache.latent_channels == 24
    for i in (0, 17, 39):
        expected = encode(codec, load_rgb(samples.paths[i])[None])
        y_hat, sigma_hat, label = cache[i]
        assert label == samples.labels[i]
        assert torch.equal(y_hat, expected.y_hat[0])
        assert torch.allclose(sigma_hat, expected.sigma_hat[0])
    sizes = cache.sizes()
    assert sizes["image_size"].tolist() == [[32, 32]] * 40
    assert sizes["padding"].tolist() == [[16, 16, 16, 16]] * 40
    assert (sizes["bits"] >= sizes["likelihood_bits"]).all()


def test_resume_after_interruption(tmp_path, codec, monkeypatch):
    real_encode = cache_module._encode_shard
    calls = []

    def failing(model, samples, start, stop, *args):
        calls.append(start)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated interruption")
        return real_encode(model, samples, start, stop, *args)

    monkeypatch.setattr(cache_module, "_encode_shard", failing)
    with pytest.raises(KeyboardInterrupt):
        write_latents(codec, DATA, tmp_path / "c", split="val", shard_size=16, progress=False, bitstreams=False)
    files = sorted(path.name for path in (tmp_path / "c").iterdir())
    assert files == ["index.json", "shard-00000.safetensors", "shard-00001.safetensors"]  # no partial shard
    assert not read_index(tmp_path / "c")["complete"]
    with pytest.raises(CacheError, match="incomplete"):
        LatentCache(tmp_path / "c")

    calls.clear()
    index = write_latents(codec, DATA, tmp_path / "c", split="val", shard_size=16, progress=False, bitstreams=False)
    assert calls == [32]  # only the missing shard is encoded
    assert index["complete"] and len(index["shards"]) == 3
    monkeypatch.setattr(cache_module, "_encode_shard", real_encode)
    write_latents(codec, DATA, tmp_path / "d", split="val", shard_size=16, progress=False, bitstreams=False)
    resumed, fresh = LatentCache(tmp_path / "c"), LatentCache(tmp_path / "d")
    for i in range(40):
        assert all(torch.equal(a, b) for a, b in zip(resumed[i][:2], fresh[i][:2]))


def test_damaged_shard_is_rewritten(tmp_path, codec):
    write_latents(codec, DATA, tmp_path / "c", split="val", shard_size=16, progress=False, bitstreams=False)
    (tmp_path / "c" / "shard-00001.safetensors").write_bytes(b"garbage")
    index = write_latents(codec, DATA, tmp_path / "c", split="val", shard_size=16, progress=False, bitstreams=False)
    assert index["complete"]
    assert LatentCache(tmp_path / "c")[20][0].shape == (24, 4, 4)


def test_other_codec_is_refused(tmp_path, codec):
    write_latents(codec, DATA, tmp_path / "c", split="val", shard_size=64, progress=False, bitstreams=False)
    with torch.no_grad():
        codec.g_a[0].weight.mul_(1.01)
    with pytest.raises(CacheError, match="another codec"):
        write_latents(codec, DATA, tmp_path / "c", split="val", shard_size=64, progress=False, bitstreams=False)
    index = write_latents(codec, DATA, tmp_path / "c", split="val", shard_size=64, progress=False, bitstreams=False,
                          overwrite=True)
    assert index["complete"]


@pytest.fixture
def train_cache(tmp_path, codec):
    write_latents(codec, DATA, tmp_path / "train", split="train", shard_size=32, progress=False, bitstreams=False)
    return tmp_path / "train"


def test_loader_batches(train_cache):
    loader = LatentLoader(train_cache, batch_size=16, seed=1)
    assert loader.num_classes == 10 and len(loader) == 5
    assert loader.input_spec == InputSpec("latent", "latent", None, (24, 24), (16, 16))
    assert loader.dataset.augment and loader.shuffle  # split "train" augments by default
    batches = list(loader)
    (y_hat, sigma_hat), labels = batches[0]
    assert y_hat.shape == sigma_hat.shape == (16, 24, 28, 28)  # resized to 32, cropped to 28
    assert y_hat.dtype == torch.float32 and labels.dtype == torch.long
    assert sum(len(b[1]) for b in batches) == 80
    assert loader.epoch == 1
    again = LatentLoader(train_cache, batch_size=16, seed=1)
    first = next(iter(again))
    assert torch.equal(first[0][0], y_hat) and torch.equal(first[1], labels)  # same seed, same batches
    second_epoch = next(iter(again))
    assert not torch.equal(second_epoch[0][0], y_hat)


def test_loader_eval_is_deterministic_centre_crop(train_cache):
    loader = LatentLoader(train_cache, batch_size=8, augment=False, resize=None, crop=2)
    assert not loader.shuffle
    (y_hat, _), labels = next(iter(loader))
    cache = LatentCache(train_cache)
    assert torch.equal(y_hat[0], cache[0][0][:, 1:3, 1:3])  # the middle 2x2 of the 4x4 latents
    assert labels[0] == cache[0][2]
    (y2, _), _ = next(iter(loader))
    assert torch.equal(y_hat, y2)


def test_loader_augmentation_flips_and_crops(train_cache):
    loader = LatentLoader(train_cache, batch_size=80, resize=None, crop=None, shuffle=False, seed=0)
    (y_hat, _), _ = next(iter(loader))
    cache = LatentCache(train_cache)
    raw = torch.stack([cache[i][0] for i in range(80)])
    flipped = [torch.equal(y_hat[i], raw[i].flip(-1)) and not torch.equal(raw[i], raw[i].flip(-1)) for i in range(80)]
    same = [torch.equal(y_hat[i], raw[i]) for i in range(80)]
    assert all(a or b for a, b in zip(flipped, same))
    assert 20 < sum(flipped) < 60


def test_index_is_json_and_names_the_codec(train_cache):
    index = json.loads((train_cache / "index.json").read_text())
    assert index["codec"]["architecture"] == "bmshj2018-hyperprior" and index["codec"]["M"] == 24
    assert index["bpp"] is None  # bitstreams=False: no real size measured
