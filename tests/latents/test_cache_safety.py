"""A damaged or inconsistent latent cache raises CacheError naming the file and the cause; paths in
index.json stay inside the cache folder; the shard size is no part of a cache's identity."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest
import torch

from tests.latents import require_compressai

require_compressai()

from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from cdomain.errors import DataError  # noqa: E402
from cdomain.latents import cache as cache_module  # noqa: E402
from cdomain.latents.cache import CacheError, LatentCache, read_index, write_latents  # noqa: E402
from cdomain.latents.codecs import load_codec  # noqa: E402
from tests.latents.conftest import CODEC_PATH  # noqa: E402

DATA = "textures-tiny"  # 40 val images: shards of 16, 16 and 8 with shard_size=16


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    directory = tmp_path_factory.mktemp("latents") / "val"
    write_latents(load_codec(CODEC_PATH), DATA, directory, split="val", shard_size=16, progress=False, bitstreams=False)
    return directory


@pytest.fixture
def cache_dir(written, tmp_path):
    return shutil.copytree(written, tmp_path / "val")


def edit_index(directory, change) -> None:
    index = json.loads((directory / "index.json").read_text())
    replaced = change(index)  # edits in place, or returns a whole new index
    index = index if replaced is None else replaced
    (directory / "index.json").write_text(json.dumps(index))


def rewrite_shard(path, change) -> None:
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    change(tensors, metadata)
    save_file(tensors, str(path), metadata=metadata)


def test_cache_error_is_a_data_error_and_pickles():
    error = CacheError("x: broken")
    assert isinstance(error, DataError) and isinstance(error, ValueError)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is CacheError and str(again) == "x: broken"


def test_intact_copy_reads(cache_dir):
    cache = LatentCache(cache_dir)
    assert len(cache) == 40 and cache[39][0].shape == (24, 4, 4)


@pytest.mark.parametrize("damage", ["truncated", "random", "empty"])
def test_damaged_shard(cache_dir, damage):
    path = cache_dir / "shard-00001.safetensors"
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "random": os.urandom(len(data)), "empty": b""}[damage])
    with pytest.raises(CacheError, match="shard-00001.safetensors: unreadable latent shard") as caught:
        LatentCache(cache_dir)
    assert type(caught.value) is CacheError


def test_shard_damaged_after_opening_in_a_worker(cache_dir):
    worker_copy = pickle.loads(pickle.dumps(LatentCache(cache_dir)))  # a worker reopens the shards
    (cache_dir / "shard-00002.safetensors").write_bytes(b"garbage")
    with pytest.raises(CacheError, match="shard-00002.safetensors: unreadable"):
        worker_copy[35]


def test_shard_missing_a_sample_tensor(cache_dir):
    rewrite_shard(cache_dir / "shard-00001.safetensors", lambda tensors, meta: tensors.pop("sigma_hat.3"))
    cache = LatentCache(cache_dir)
    assert cache[18][0].shape == (24, 4, 4)
    with pytest.raises(CacheError, match=r"shard-00001.safetensors: shard has no tensor 'sigma_hat.3'"):
        cache[19]


def test_shard_missing_labels(cache_dir):
    rewrite_shard(cache_dir / "shard-00000.safetensors", lambda tensors, meta: tensors.pop("labels"))
    with pytest.raises(CacheError, match=r"shard-00000.safetensors: shard has no tensor 'labels'"):
        LatentCache(cache_dir)


def test_shard_with_wrong_tensor_shape(cache_dir):
    def change(tensors, meta):
        tensors["y_hat.0"] = tensors["y_hat.0"][:5].clone()

    rewrite_shard(cache_dir / "shard-00000.safetensors", change)
    with pytest.raises(CacheError, match=r"shard-00000.safetensors: tensor 'y_hat.0' has shape \(5, 4, 4\)"):
        LatentCache(cache_dir)[0]


def test_shard_sizes_missing_a_column(cache_dir):
    rewrite_shard(cache_dir / "shard-00002.safetensors", lambda tensors, meta: tensors.pop("padding"))
    with pytest.raises(CacheError, match=r"shard-00002.safetensors: shard has no tensor 'padding'"):
        LatentCache(cache_dir).sizes()


def test_swapped_shards_are_noticed(cache_dir):
    first, second = cache_dir / "shard-00000.safetensors", cache_dir / "shard-00001.safetensors"
    first.rename(cache_dir / "swap")
    second.rename(first)
    (cache_dir / "swap").rename(second)
    match = r"shard-00000.safetensors: shard holds samples '16:32', index.json lists 0:16"
    with pytest.raises(CacheError, match=match):
        LatentCache(cache_dir)


def test_shard_of_another_cache_is_noticed(cache_dir):
    rewrite_shard(cache_dir / "shard-00000.safetensors", lambda tensors, meta: meta.update(codec="0" * 16))
    with pytest.raises(CacheError, match="shard-00000.safetensors: shard was written for another codec"):
        LatentCache(cache_dir)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda index: ["not", "an", "object"], "a JSON list, not an object"),
        (lambda index: index.update(num_samples="40"), "'num_samples' must be a positive integer"),
        (lambda index: index.update(num_samples=None), "'num_samples' must be a positive integer"),
        (lambda index: index.update(latent_channels=24.0), "'latent_channels' must be a positive integer"),
        (lambda index: index.update(classes="abc"), "'classes' must be a list of class names"),
        (lambda index: index.update(shards={"file": "shard-00000.safetensors"}), "'shards' must be a non-empty list"),
        (lambda index: index.__delitem__("shards"), "'shards' must be a non-empty list"),
        (lambda index: index["shards"].__setitem__(1, "shard-00001.safetensors"), "shard entry 1 must be an object"),
        (lambda index: index["shards"][1].update(file=7), "shard file 7 is not a plain file name"),
        (lambda index: index["shards"][1].update(start="16"), "shard-00001.safetensors: start and count must be int"),
        (lambda index: index["shards"][1].__delitem__("count"), "shard-00001.safetensors: start and count must be int"),
        (lambda index: index.update(bpp="high"), "'bpp' must be a number or null"),
        (lambda index: index.update(complete="yes"), "incomplete"),
        (lambda index: index.update(format=None), "not a cdomain latent cache"),
    ],
)
def test_index_with_wrong_type_or_field(cache_dir, change, match):
    edit_index(cache_dir, change)
    with pytest.raises(CacheError, match=match) as caught:
        LatentCache(cache_dir)
    assert str(cache_dir) in str(caught.value)


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00garbage", b""])
def test_index_unreadable(cache_dir, content):
    (cache_dir / "index.json").write_bytes(content)
    with pytest.raises(CacheError, match="index.json: unreadable latent cache index"):
        read_index(cache_dir)
    with pytest.raises(CacheError, match="index.json: unreadable latent cache index"):
        LatentCache(cache_dir)


def test_missing_index_is_still_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no latent cache index") as caught:
        LatentCache(tmp_path)
    assert isinstance(caught.value, CacheError)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda index: index.update(shard_size=0), "'shard_size' must be a positive integer"),
        (lambda index: index.update(num_samples=0), "'num_samples' must be a positive integer"),
        (lambda index: index.update(latent_channels=0), "'latent_channels' must be a positive integer"),
        (lambda index: index["shards"][2].update(count=0), "count >= 1"),
        (lambda index: index.update(shards=[]), "'shards' must be a non-empty list"),
    ],
)
def test_index_with_zero_counts(cache_dir, change, match):
    edit_index(cache_dir, change)
    with pytest.raises(CacheError, match=match):
        LatentCache(cache_dir)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda index: index["shards"][1].update(start=100), "starts at sample 100, expected 16"),
        (lambda index: index["shards"][0].update(start=-16), "starts at sample -16, expected 0"),
        (lambda index: index["shards"][2].update(count=80), "shards hold 112 samples, num_samples is 40"),
        (lambda index: index.update(num_samples=400), "shards hold 40 samples, num_samples is 400"),
        (lambda index: index.update(classes=["only"]), "label [1-9] does not index the 1 classes"),
    ],
)
def test_index_out_of_range(cache_dir, change, match):
    edit_index(cache_dir, change)
    with pytest.raises(CacheError, match=match):
        LatentCache(cache_dir)


@pytest.mark.parametrize("index", [40, 1000, -1])
def test_sample_out_of_range(cache_dir, index):
    cache = LatentCache(cache_dir)
    with pytest.raises(CacheError, match=f"sample {index} out of range .the cache holds 40") as caught:
        cache[index]
    assert isinstance(caught.value, IndexError)  # sequence iteration still stops at the end
    assert sum(1 for _ in cache) == 40


@pytest.mark.parametrize("name", ["../outside.safetensors", "ABSOLUTE", "sub/shard-00001.safetensors", "..", ""])
def test_shard_paths_are_confined_to_the_cache(cache_dir, tmp_path, name):
    outside = shutil.copy(cache_dir / "shard-00001.safetensors", tmp_path / "outside.safetensors")
    (cache_dir / "sub").mkdir()
    shutil.copy(cache_dir / "shard-00001.safetensors", cache_dir / "sub")
    name = str(outside) if name == "ABSOLUTE" else name
    edit_index(cache_dir, lambda index: index["shards"][1].update(file=name))
    with pytest.raises(CacheError, match="is not a plain file name inside the cache folder"):
        LatentCache(cache_dir)


def test_write_latents_with_damaged_index_types(cache_dir):
    codec = load_codec(CODEC_PATH)
    edit_index(cache_dir, lambda index: index.update(fingerprints="other", codec="some codec"))
    with pytest.raises(CacheError, match="holds latents of another codec or data set .'some codec'"):
        write_latents(codec, DATA, cache_dir, split="val", progress=False, bitstreams=False)


def test_write_latents_rewrites_an_index_that_is_not_an_object(cache_dir, monkeypatch):
    (cache_dir / "index.json").write_text("[1, 2]")
    monkeypatch.setattr(cache_module, "_encode_shard", lambda *args: pytest.fail("must not re-encode"))
    index = write_latents(load_codec(CODEC_PATH), DATA, cache_dir, split="val", shard_size=16, progress=False,
                          bitstreams=False)
    assert index["complete"] and LatentCache(cache_dir)[5][0].shape == (24, 4, 4)


def test_cache_written_with_another_shard_size_is_reused(tmp_path, monkeypatch):
    codec = load_codec(CODEC_PATH)
    directory = tmp_path / "val"
    write_latents(codec, DATA, directory, split="val", shard_size=32, progress=False, bitstreams=False)
    before = {path.name: path.stat().st_mtime_ns for path in directory.iterdir()}
    assert sorted(before) == ["index.json", "shard-00000.safetensors", "shard-00001.safetensors"]
    expected = LatentCache(directory)[33]
    monkeypatch.setattr(cache_module, "_encode_shard", lambda *args: pytest.fail("must not re-encode"))
    index = write_latents(codec, DATA, directory, split="val", progress=False, bitstreams=False)  # default size
    assert index["complete"] and index["shard_size"] == 32
    assert {path.name: path.stat().st_mtime_ns for path in directory.iterdir()} == before  # nothing rewritten
    cache = LatentCache(directory)
    assert len(cache) == 40 and all(torch.equal(a, b) for a, b in zip(cache[33][:2], expected[:2]))


def test_interrupted_cache_resumes_in_its_own_shard_size(tmp_path, monkeypatch):
    codec = load_codec(CODEC_PATH)
    directory = tmp_path / "val"
    real_encode, calls, interrupt = cache_module._encode_shard, [], [True]

    def encode(model, samples, start, stop, *args):
        calls.append((start, stop))
        if len(calls) == 2 and interrupt.pop():
            raise KeyboardInterrupt("simulated interruption")
        return real_encode(model, samples, start, stop, *args)

    monkeypatch.setattr(cache_module, "_encode_shard", encode)
    with pytest.raises(KeyboardInterrupt):
        write_latents(codec, DATA, directory, split="val", shard_size=16, progress=False, bitstreams=False)
    interrupt.append(False)
    calls.clear()
    index = write_latents(codec, DATA, directory, split="val", progress=False, bitstreams=False)  # default size
    assert calls == [(16, 32), (32, 40)]  # the first shard is kept
    assert index["complete"] and [entry["count"] for entry in index["shards"]] == [16, 16, 8]
    assert len(LatentCache(directory)) == 40
