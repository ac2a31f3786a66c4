"""DCTLoader: shapes, determinism under a seed, skipping bad files, sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdomain import DCTLoader, JPEGError
from cdomain.data.embedded import embedded_dataset
from cdomain.models import InputSpec
from tests.helpers import encode, photo_like


@pytest.fixture(scope="module")
def tiny_root():
    return embedded_dataset("textures-tiny")


def test_merged_batches(tiny_root):
    loader = DCTLoader("textures-tiny", split="train", batch_size=16, fbs=8)
    batches = list(loader)
    assert len(batches) == len(loader) == 5  # 80 images
    inputs, labels = batches[0]
    assert inputs.shape == (16, 24, 4, 4) and inputs.dtype == torch.float32
    assert labels.dtype == torch.long and loader.num_classes == 10
    assert loader.input_spec == InputSpec("dct", "merged", 8, 24, 8)
    split = DCTLoader("textures-tiny", split="train", batch_size=16, fbs=8, layout="split")
    assert split.input_spec == InputSpec("dct", "split", 8, (8, 16), (8, 16))


def test_split_batches_with_crop(tiny_root):
    loader = DCTLoader(tiny_root / "val", batch_size=8, fbs=16, layout="split", crop=16)
    (y, cbcr), labels = next(iter(loader))
    assert y.shape == (8, 16, 2, 2) and cbcr.shape == (8, 32, 1, 1) and labels.shape == (8,)


def test_same_seed_same_batches_and_epochs_differ(tiny_root):
    def run(seed, workers=0):
        loader = DCTLoader("textures-tiny", batch_size=16, fbs=4, crop=16, seed=seed, workers=workers)
        first = [(x.clone(), y.clone()) for x, y in loader]
        second = [(x.clone(), y.clone()) for x, y in loader]
        return first, second

    first, second = run(1)
    again, _ = run(1)
    other, _ = run(2)
    assert len(first) == len(second) == len(again) == len(other) == 5  # 80 images, batches of 16
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, second))  # reshuffled per epoch
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, other))


def test_workers_do_not_change_results(tiny_root):
    single = [x for x, _ in DCTLoader("textures-tiny", batch_size=20, fbs=4, crop=16, seed=5)]
    double = [x for x, _ in DCTLoader("textures-tiny", batch_size=20, fbs=4, crop=16, seed=5, workers=2)]
    assert len(single) == len(double) == 4  # 80 images, batches of 20
    assert all(torch.equal(a, b) for a, b in zip(single, double))


def test_skip_bad_counts_and_names_files(tmp_path):
    good = encode(photo_like(32, 32), 80)
    for index in range(5):
        (tmp_path / "a").mkdir(exist_ok=True)
        (tmp_path / "a" / f"{index}.jpg").write_bytes(good)
    (tmp_path / "a" / "truncated.jpg").write_bytes(good[:200])
    (tmp_path / "a" / "png.jpg").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    loader = DCTLoader(tmp_path, batch_size=3, fbs=4, skip_bad=True)
    seen = sum(labels.numel() for _, labels in loader)
    assert seen == 5 and loader.skipped == 2
    assert sorted(p.path.rsplit("/", 1)[1] for p in loader.skipped_files) == ["png.jpg", "truncated.jpg"]
    strict = DCTLoader(tmp_path, batch_size=7, fbs=4)
    with pytest.raises(JPEGError, match="png.jpg|truncated.jpg"):
        list(strict)


def test_file_list_with_labels_and_mixed_sizes(tmp_path):
    paths = []
    for index, size in enumerate([(32, 32), (48, 64)]):
        path = tmp_path / f"{index}.jpg"
        path.write_bytes(encode(photo_like(*size), 80))
        paths.append((path, index))
    with pytest.raises(ValueError, match="crop="):
        list(DCTLoader(paths, batch_size=2, fbs=4))
    x, labels = next(iter(DCTLoader(paths, batch_size=2, fbs=4, crop=32)))
    assert x.shape == (2, 12, 4, 4) and sorted(labels.tolist()) == [0, 1]


def test_stats_normalise_channels(tiny_root):
    loader = DCTLoader("textures-tiny", split="train", batch_size=80, fbs=4, augment=False)
    stats = loader.compute_stats()
    loader.stats = stats
    x, _ = next(iter(loader))
    per_channel = x.transpose(0, 1).reshape(12, -1)
    np.testing.assert_allclose(per_channel.mean(1).numpy(), 0, atol=1e-3)
    np.testing.assert_allclose(per_channel.std(1, unbiased=False).numpy(), 1, atol=1e-3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(fbs=0), "fbs"),
        (dict(fbs=65), "fbs"),
        (dict(layout="planar"), "layout"),
        (dict(crop=20), "multiple of 16"),
        (dict(small="shrink"), "small"),
        (dict(batch_size=0), "batch_size"),
    ],
)
def test_bad_options_are_clear(tiny_root, kwargs, match):
    with pytest.raises(ValueError, match=match):
        DCTLoader("textures-tiny", **kwargs)


def test_missing_folder_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DCTLoader(tmp_path / "nothing")
