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
