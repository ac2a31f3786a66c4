"""Loaders decode a file only down to its crop once they have decoded it whole.

The first read of a file decodes all of it (so a corrupt file is refused then); later reads
of a plain crop stop at the crop's last block row. Batches must not change by it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cdomain import DCTLoader, RGBLoader
from cdomain.jpeg import native
from tests.helpers import photo_like


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Baseline files of three subsamplings and gray, one progressive, one smaller than the crop."""
    root = tmp_path_factory.mktemp("partial")
    kinds = [("RGB", {"subsampling": 2}), ("RGB", {"subsampling": 0}), ("L", {}),
             ("RGB", {"subsampling": 1}), ("RGB", {"progressive": True, "subsampling": 2})]
    items = []
    for index in range(10):
        mode, options = kinds[index % len(kinds)]
        height, width = (24, 40) if index == 9 else (96 + 16 * (index % 3), 80 + 8 * (index % 2))
        path = root / f"{index}.jpg"
        Image.fromarray(photo_like(height, width, seed=index)).convert(mode).save(path, quality=80, **options)
        items.append((str(path), index % 2))
    return items


@pytest.fixture
def stops(monkeypatch):
    """The ``stop_rows`` of every second call to the compiled decoder (the decoding one)."""
    seen = []
    compiled = native._decode_jpeg

    def spy(data, coef, nz, tables, max_pixels, max_scans, lenient, stop_rows):
        if coef.shape[0]:
            seen.append(int(stop_rows))
        return compiled(data, coef, nz, tables, max_pixels, max_scans, lenient, stop_rows)

    monkeypatch.setattr(native, "_decode_jpeg", spy)
    return seen


def _epochs(loader, count, whole: bool):
    """``count`` epochs of batches; ``whole`` forgets after each epoch which files were checked."""
    batches = []
    for _ in range(count):
        for inputs, labels in loader:
            batches.append((inputs.clone() if isinstance(inputs, torch.Tensor) else inputs, labels))
        if whole:
            loader.dataset.checked[:] = False
    return batches


@pytest.mark.parametrize("kind", ["dct", "dct-batch", "rgb", "dct-centre"])
def test_batches_equal_those_of_whole_decoding(files, kind, stops):
    def make():
        if kind == "rgb":
            return RGBLoader(files, batch_size=4, crop=64, augment=True, seed=3)
        return DCTLoader(files, batch_size=4, crop=64, fbs=8, augment=kind != "dct-centre", seed=3,
                         device="cpu" if kind == "dct-batch" else None)

    partial = _epochs(make(), 3, whole=False)
    assert sum(stop >= 0 for stop in stops) >= 12  # epochs 2 and 3 stop early for most files
    stops.clear()
    whole = _epochs(make(), 3, whole=True)
    assert stops and all(stop < 0 for stop in stops)
    assert len(partial) == len(whole)
    for (a, la), (b, lb) in zip(partial, whole):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_first_reads_are_whole_and_later_ones_stop_below_the_crop(files, stops):
    loader = DCTLoader(files, batch_size=10, crop=64, fbs=4, augment=True, shuffle=False, seed=1)
    _epochs(loader, 1, whole=False)
    assert stops == [-1] * 10
    stops.clear()
    _epochs(loader, 1, whole=False)
    baseline = [i for i in range(10) if i % 5 != 4 and i != 9]  # progressive and padded files decode whole
    assert [i for i, stop in enumerate(stops) if stop >= 0] == baseline
    for i in baseline:
        assert 8 <= stops[i] < native.decode(Path(files[i][0]).read_bytes()).y.shape[0] + 1


def test_a_corrupt_file_is_refused_in_every_epoch(tmp_path, files):
    pixels = photo_like(256, 64, seed=7)
    path = tmp_path / "cut.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 4])  # the crop at the top would decode fine
    loader = DCTLoader([(str(path), 0)] + files[:3], batch_size=4, crop=64, fbs=4, augment=False,
                       skip_bad=True)
    for epoch in range(3):
        assert sum(len(labels) for _, labels in loader) == 3
        assert loader.skipped == epoch + 1  # refused again each epoch, never read in part
    assert not loader.dataset.checked[0] and loader.dataset.checked[1:].all()


def test_lenient_reads_always_decode_whole(files, stops):
    loader = DCTLoader(files[:4], batch_size=4, crop=64, fbs=4, strict=False)
    _epochs(loader, 2, whole=False)
    assert stops and all(stop < 0 for stop in stops)
    assert not np.any(loader.dataset.checked)
