"""Shared-memory slots of the batch path: batches read from them are the batches the workers
packed, and whenever a slot cannot be used the batch travels the usual way."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from PIL import Image

from cdomain import DCTLoader
from cdomain.data import batch_slots
from cdomain.data.batch_path import CoefficientBatch
from cdomain.data.batch_slots import BatchSlots, SlotTicket, slot_bytes
from cdomain.data.dct_transforms import ChannelStats
from tests.helpers import photo_like


@pytest.fixture(scope="module")
def files_420(tmp_path_factory):
    """Twelve labelled 4:2:0 JPEGs (the slots' size), of two sizes."""
    root = tmp_path_factory.mktemp("slots")
    items = []
    for index in range(12):
        path = root / f"{index}.jpg"
        height, width = (64, 80) if index % 2 else (72, 64)
        Image.fromarray(photo_like(height, width, seed=index)).save(path, quality=50 + 3 * index, subsampling=2)
        items.append((str(path), index % 3))
    return items


OPTIONS = dict(batch_size=4, fbs=8, crop=48, augment=True, seed=5, stats=ChannelStats(np.zeros(24), np.ones(24)))


def test_batches_through_slots_equal_those_without_workers(files_420):
    single = DCTLoader(files_420, device="cpu", **OPTIONS)
    double = DCTLoader(files_420, device="cpu", workers=2, **OPTIONS)
    for _ in range(2):  # the second epoch reuses the slots
        expected = [x.clone() for x, _ in single]
        got = [x for x, _ in double]
        assert len(got) == len(expected) == 3
        assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert double.dataset.slots is not None and double.dataset.slots.taken == 6
    assert int(double.dataset.slots.busy.sum()) == 0  # every slot went back to its worker


def test_packed_batches_from_slots_stay_valid(files_420):
    """packed_batches hands out copies: every batch of the epoch, kept to the end, is intact."""
    single = list(DCTLoader(files_420, device="cpu", **OPTIONS).packed_batches())
    double = DCTLoader(files_420, device="cpu", workers=2, **OPTIONS)
    kept = list(double.packed_batches())
    assert double.dataset.slots.taken == 3
    for (a, la), (b, lb) in zip(single, kept, strict=True):
        assert isinstance(b, CoefficientBatch) and b.upsample == a.upsample
        assert all(torch.equal(x, y) for x, y in zip(a._tensors().values(), b._tensors().values()))
        assert torch.equal(la, lb)


def test_no_slots_without_room_in_shared_memory(files_420, monkeypatch):
    monkeypatch.setattr(batch_slots.os, "statvfs", lambda path: types.SimpleNamespace(f_bavail=10, f_frsize=4096))
    loader = DCTLoader(files_420, device="cpu", workers=2, **OPTIONS)
    expected = [x.clone() for x, _ in DCTLoader(files_420, device="cpu", **OPTIONS)]
    assert all(torch.equal(a, b) for (a, _), b in zip(loader, expected, strict=True))
    assert loader.dataset.slots is None


def _batch(size=2, n=4, rows=6, cols=6):
    return CoefficientBatch(
        luma=torch.ones((size, n, rows, cols), dtype=torch.int16),
        chroma=torch.full((size, 2, n, rows // 2, cols // 2), 2, dtype=torch.int16),
        tables=torch.ones((size, 3, 8, 8), dtype=torch.int32), targets=None, upsample=(2, 2),
    )


def test_a_worker_without_a_free_slot_or_with_a_big_batch_sends_the_batch_itself(monkeypatch):
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: types.SimpleNamespace(id=1))
    slots = BatchSlots(workers=2, size=slot_bytes(2, 4, 6, 6))
    batch = _batch()
    tickets = [slots.put(batch) for _ in range(batch_slots.DEPTH)]
    assert all(isinstance(t, SlotTicket) for t in tickets)
    assert sorted(t.slot for t in tickets) == list(range(batch_slots.DEPTH, 2 * batch_slots.DEPTH))  # worker 1's
    assert slots.put(batch) is batch  # all four busy
    slots.release(tickets[2])
    again = slots.put(batch)
    assert isinstance(again, SlotTicket) and again.slot == tickets[2].slot
    taken = slots.take(again)
    assert torch.equal(taken.luma, batch.luma) and torch.equal(taken.chroma, batch.chroma) and taken.targets is None
    slots.release(again)
    bigger = _batch(size=8)  # more than the slot holds
    assert slots.put(bigger) is bigger


def test_outside_a_worker_nothing_goes_into_a_slot():
    slots = BatchSlots(workers=1, size=slot_bytes(2, 4, 6, 6))
    batch = _batch()
    assert slots.put(batch) is batch
