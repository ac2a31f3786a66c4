"""The device-side batch path of DCTLoader (``device=``) against the per-sample path.

Both paths must give the same tensors bit for bit: same files, crops, flips, random quality
changes, normalisation; whatever the subsampling (4:2:0, 4:2:2, 4:4:4, grayscale, mixed in
one batch) and whether an image had to be padded.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from cdomain import DCTLoader
from cdomain.data.batch_path import CoefficientBatch, float_batch_bytes
from cdomain.data.dct_transforms import ChannelStats
from cdomain.data.quality import RandomQuality
from tests.helpers import photo_like


@pytest.fixture(scope="module")
def mixed_files(tmp_path_factory):
    """Ten labelled JPEGs of four kinds of chroma, one smaller than the crop."""
    root = tmp_path_factory.mktemp("mixed")
    kinds = [("RGB", 2), ("RGB", 1), ("RGB", 0), ("L", None)]
    items = []
    for index in range(10):
        mode, subsampling = kinds[index % 4]
        height, width = (40, 40) if index == 9 else (72 + 8 * (index % 3), 88 + 16 * (index % 2))
        pixels = photo_like(height, width, seed=index)
        image = Image.fromarray(pixels).convert(mode)
        options = {"quality": 60 + 3 * index}
        if subsampling is not None:
            options["subsampling"] = subsampling
        path = root / f"{index}.jpg"
        image.save(path, format="JPEG", **options)
        items.append((str(path), index % 3))
    return items


def _pair(items, **options):
    per_sample = DCTLoader(items, **options)
    batched = DCTLoader(items, device="cpu", **options)
    return per_sample, batched


def _assert_same(per_sample, batched, epochs=2):
    count = 0
    for _ in range(epochs):
        for (a, la), (b, lb) in zip(per_sample, batched, strict=True):
            parts_a = a if isinstance(a, tuple) else (a,)
            parts_b = b if isinstance(b, tuple) else (b,)
            assert len(parts_a) == len(parts_b)
            for x, y in zip(parts_a, parts_b):
                assert x.dtype == y.dtype == torch.float32 and x.shape == y.shape
                assert torch.equal(x, y)
            assert torch.equal(la, lb)
            count += 1
    assert count


@pytest.mark.parametrize("fbs", [1, 16, 64])
def test_merged_augmented_batches_are_identical(mixed_files, fbs):
    rng = np.random.default_rng(fbs)
    stats = ChannelStats(rng.normal(0, 20, 3 * fbs), rng.uniform(1, 50, 3 * fbs))
    per_sample, batched = _pair(mixed_files, batch_size=4, fbs=fbs, crop=48, augment=True, seed=3, stats=stats)
    _assert_same(per_sample, batched)


def test_unnormalised_centre_crops_and_no_flip_are_identical(mixed_files):
    _assert_same(*_pair(mixed_files, batch_size=5, fbs=8, crop=(32, 64), augment=False))
    _assert_same(*_pair(mixed_files, batch_size=3, fbs=8, crop=48, augment=True, flip=False, seed=1))


def test_split_layout_is_identical(mixed_files):
    files = [item for index, item in enumerate(mixed_files) if index % 4 in (0, 3)]  # 4:2:0 and grayscale
    stats = ChannelStats(np.arange(24, dtype=np.float32), np.full(24, 3.0))
    _assert_same(*_pair(files, batch_size=2, fbs=8, layout="split", crop=48, augment=True, seed=7, stats=stats))


@pytest.mark.parametrize("method", ["dct", "pixel"])
def test_random_quality_moves_to_the_batch_and_stays_identical(mixed_files, method):
    transform = RandomQuality(10, 90, method)
    per_sample, batched = _pair(mixed_files, batch_size=4, fbs=16, crop=48, augment=True, seed=2, transform=transform)
    _assert_same(per_sample, batched, epochs=1)
    batch, _ = next(iter(batched.packed_batches()))
    assert (batch.targets is not None) == (method == "dct")  # the dct route requantizes on the device


def test_regions_reach_the_target_function_alike(mixed_files):
    seen = {False: [], True: []}

    def target(packed):
        def fn(index, region):
            seen[packed].append((index, region))
            return index
        return fn

    for packed in (False, True):
        loader = DCTLoader(mixed_files, batch_size=4, fbs=4, crop=32, augment=True, seed=9, target=target(packed),
                           device="cpu" if packed else None)
        list(loader)
    assert seen[False] and seen[False] == seen[True]


def test_workers_give_the_same_batches(mixed_files):
    options = dict(batch_size=4, fbs=8, crop=32, augment=True, seed=4)
    single = [x for x, _ in DCTLoader(mixed_files, device="cpu", **options)]
    double = [x for x, _ in DCTLoader(mixed_files, device="cpu", workers=2, **options)]
    assert len(single) == len(double) == 3 and all(torch.equal(a, b) for a, b in zip(single, double))


def test_the_int16_batch_is_at_most_half_the_bytes_of_the_float_batch(mixed_files):
    files = [item for index, item in enumerate(mixed_files) if index % 4 == 0]  # 4:2:0, as most photos
    for fbs in (8, 16, 64):
        loader = DCTLoader(files, batch_size=8, fbs=fbs, crop=48, device="cpu")
        batch, _ = next(iter(loader.packed_batches()))
        assert isinstance(batch, CoefficientBatch) and batch.luma.dtype == torch.int16
        inputs, _ = next(iter(loader))
        assert float_batch_bytes(batch, fbs, "merged") == inputs.numel() * 4
        assert batch.nbytes <= 0.5 * inputs.numel() * 4


def test_device_argument_is_checked(mixed_files):
    from cdomain import RGBLoader

    with pytest.raises(ValueError, match="DCT inputs only"):
        RGBLoader(mixed_files, device="cpu")
    with pytest.raises(ValueError, match="device must be"):
        DCTLoader(mixed_files, device="tpu-ish")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            DCTLoader(mixed_files, device="cuda")


def test_batches_kept_by_the_caller_never_change(mixed_files):
    """Output memory is recycled only once nothing holds it: every batch of two epochs, all kept
    (and one of them only through a view, one only through NumPy), still equals the per-sample
    path's batch at the end."""
    options = dict(batch_size=2, fbs=8, crop=(32, 32), augment=True, seed=3, stats=ChannelStats(np.zeros(24), np.ones(24)))
    per_sample, batched = _pair(mixed_files, **options)
    expected = [x.clone() for _ in range(2) for x, _ in per_sample]
    kept = []
    for _ in range(2):
        for index, (x, _) in enumerate(batched):
            kept.append(x[:, :] if index == 1 else x.numpy() if index == 2 else x)
    assert len(kept) == len(expected)
    for got, want in zip(kept, expected):
        assert torch.equal(torch.as_tensor(got), want)


def test_batches_dropped_by_the_caller_are_recycled(mixed_files):
    """A loop that drops each batch before the next one reuses a few output buffers, not new
    memory per batch, and the values stay those of the per-sample path."""
    options = dict(batch_size=2, fbs=8, crop=(32, 32), augment=True, seed=4)
    per_sample, batched = _pair(mixed_files, **options)
    expected = [x.clone() for x, _ in per_sample]
    addresses = []
    for (x, _), want in zip(batched, expected, strict=True):
        assert torch.equal(x, want)
        addresses.append(x.data_ptr())
        del x
    assert len(set(addresses)) <= 3 < len(addresses)


def test_output_buffers_outlive_an_epoch(mixed_files):
    """The loader keeps its output pool between epochs: a later epoch hands out the tensors of
    the first again (new ones would be new memory to fault in, megabytes per batch)."""
    import weakref

    loader = DCTLoader(mixed_files, batch_size=2, fbs=8, crop=(32, 32), augment=True, seed=4, device="cpu")
    first = []
    for x, _ in loader:
        first.append(weakref.ref(x))
        del x
    later = []
    for _ in range(2):
        for x, _ in loader:
            later.append(any(ref() is x for ref in first))
            del x
    assert later and all(later)
