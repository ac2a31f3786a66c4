"""EpochLoader keeps its worker processes across epochs and still seeds every sample by epoch."""

from __future__ import annotations

import os

import numpy as np
import torch

from cdomain.data.loader import EpochLoader, SampleDataset


class Probe(SampleDataset):
    """Sample i of an epoch: a number drawn from (epoch, i), and the process that loaded it."""

    def __init__(self, count: int) -> None:
        self.count, self.epoch = count, 0

    def __len__(self) -> int:
        return self.count

    def load(self, index: int):
        draw = np.random.default_rng([self.epoch, index]).random()
        return torch.tensor([draw, float(self.epoch), float(index)]), os.getpid()

    def collate(self, items):
        return torch.stack([item[0] for item in items]), [item[1] for item in items]


def epochs(workers: int, count: int = 3) -> tuple[list[torch.Tensor], list[set[int]]]:
    loader = EpochLoader(Probe(10), batch_size=4, shuffle=True, seed=5, workers=workers)
    values, pids = [], []
    for _ in range(count):
        batches = list(loader)
        values.append(torch.cat([inputs for inputs, _ in batches]))
        pids.append({pid for _, batch_pids in batches for pid in batch_pids})
    return values, pids


def test_workers_persist_and_results_do_not_depend_on_them():
    serial, serial_pids = epochs(0)
    parallel, worker_pids = epochs(2)
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel))
    assert [sorted(epoch[:, 1].unique().tolist()) for epoch in serial] == [[0.0], [1.0], [2.0]]
    assert serial_pids == [{os.getpid()}] * 3
    assert os.getpid() not in worker_pids[0] and worker_pids[0] == worker_pids[1] == worker_pids[2]
    # each epoch is a new permutation of all samples
    orders = [epoch[:, 2].tolist() for epoch in serial]
    assert all(sorted(order) == list(map(float, range(10))) for order in orders) and orders[0] != orders[1]


class Targets(SampleDataset):
    """Sample i: a one-value input and a target of ``size`` values (a label, or a map)."""

    def __init__(self, size: int) -> None:
        self.size, self.epoch = size, 0

    def __len__(self) -> int:
        return 6

    def load(self, index: int):
        return torch.tensor([float(index)]), torch.full((self.size,), index)

    def collate(self, items):
        return torch.stack([item[0] for item in items]), torch.stack([item[1] for item in items]).squeeze(1)


def test_small_targets_leave_workers_by_value_and_arrive_as_tensors(monkeypatch):
    from cdomain.data import loader as module

    for size in (1, module.BY_VALUE + 1):
        batches = list(EpochLoader(Targets(size), batch_size=3, shuffle=False, workers=1))
        assert all(isinstance(t, torch.Tensor) for _, t in batches)
        assert torch.cat([t.reshape(len(t), -1)[:, 0] for _, t in batches]).tolist() == list(range(6))
    # In a worker, labels are handed over as a NumPy array (pickled by value), maps as tensors.
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())
    for size, kind in ((1, np.ndarray), (module.BY_VALUE + 1, torch.Tensor)):
        dataset = Targets(size)
        _, targets, _, _ = module.guarded_collate(dataset)([dataset[0], dataset[1]])
        assert type(targets) is kind
