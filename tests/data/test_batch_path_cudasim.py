"""The batch path's device step on Numba CUDA (simulator or GPU) gives the per-sample tensors.

The packed batches of ``DCTLoader(device=...)`` go to the device as Numba device arrays (the
path torch CUDA tensors take after their zero-copy ``__cuda_array_interface__`` view) and one
``dequantize_batch`` launch per batch must reproduce the per-sample path exactly. Tiny inputs:
the simulator runs every thread in Python.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cdomain import DCTLoader, kernels
from cdomain.data.dct_transforms import ChannelStats
from cdomain.data.quality import RandomQuality
from tests.helpers import photo_like

pytestmark = pytest.mark.cudasim


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    items = []
    for index, (mode, subsampling) in enumerate([("RGB", 2), ("RGB", 0), ("L", None), ("RGB", 2)]):
        path = root / f"{index}.jpg"
        options = {"quality": 70} if subsampling is None else {"quality": 70, "subsampling": subsampling}
        Image.fromarray(photo_like(40, 48, seed=index)).convert(mode).save(path, format="JPEG", **options)
        items.append((str(path), index % 2))
    return items


@pytest.mark.parametrize("requant", [False, True])
def test_device_step_on_cuda_equals_the_per_sample_path(cuda, files, requant):
    fbs = 3
    rng = np.random.default_rng(0)
    stats = ChannelStats(rng.normal(0, 9, 3 * fbs), rng.uniform(1, 20, 3 * fbs))
    options = dict(batch_size=2, fbs=fbs, crop=16, augment=True, seed=5, stats=stats,
                   transform=RandomQuality(10, 90, "dct") if requant else None)
    expected = [x for x, _ in DCTLoader(files, **options)]
    packed = [batch for batch, _ in DCTLoader(files, device="cpu", **options).packed_batches()]
    assert len(packed) == len(expected) == 2
    for batch, want in zip(packed, expected):
        assert (batch.targets is not None) == requant
        size, _, rows, cols = batch.luma.shape
        out = cuda.to_device(np.zeros((size, 3 * fbs, rows, cols), np.float32))
        targets = None if batch.targets is None else cuda.to_device(batch.targets.numpy())
        kernels.dequantize_batch(
            cuda.to_device(batch.luma.numpy()), cuda.to_device(batch.chroma.numpy()), cuda.to_device(batch.tables.numpy()),
            targets=targets, upsample=batch.upsample, mean=stats.mean, std=stats.std,
            out_luma=out[:, :fbs], out_chroma=out[:, fbs:],
        )
        assert torch.equal(torch.from_numpy(out.copy_to_host()), want)
