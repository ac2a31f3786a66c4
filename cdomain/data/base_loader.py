"""EpochLoader: the one loader base under DCTLoader, RGBLoader, LatentLoader and ImageLoader.

It owns what every loader needs and nothing input-specific: seeded epochs (the shuffle order and
each sample's randomness come from ``(seed, epoch, index)``, so results do not depend on the
number of workers), sharding for distributed training, ``__len__``, worker processes, and what
happens to a sample that fails:

- with ``skip_bad`` the sample is dropped from its batch and recorded in :attr:`skipped_files`
  (path and cause);
- otherwise the error is carried out of the worker as it is and re-raised in the calling
  process with its own type and message (cdomain's errors pickle intact), instead of
  PyTorch's wrapped ``RuntimeError`` with a worker traceback.

A subclass supplies a :class:`SampleDataset`: ``load(index)`` returns ``(inputs, target)``,
``describe(index)`` names the sample's file, and ``collate(items)`` stacks good samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


@dataclass(frozen=True)
class BadSample:
    """A sample that could not be loaded: which file, and why."""

    path: str
    cause: str


@dataclass(frozen=True)
class FailedSample:
    """A sample whose error must reach the calling process (``skip_bad`` off)."""

    error: BaseException


class SampleDataset(Dataset):
    """Indexable samples with a per-epoch random state; subclasses implement :meth:`load`."""

    epoch: int = 0
    skip_bad: bool = False
    samples: Any = None  # a SampleList, for datasets read from image files

    def load(self, index: int) -> tuple[Any, Any]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names the labels index (empty for unlabelled data)."""
        return self.samples.classes

    def describe(self, index: int) -> str:
        """The file behind sample ``index``, for error reports."""
        return self.samples.paths[index]

    def collate(self, items: Sequence[tuple[Any, Any]]) -> tuple[Any, Any]:
        return torch.utils.data.default_collate(list(items))

    def __getitem__(self, index: int):
        try:
            return self.load(index)
        except (ValueError, OSError) as error:  # cdomain's errors are ValueErrors; OSError: unreadable file
            if self.skip_bad:
                return BadSample(self.describe(index), str(error))
            return FailedSample(error)


def guarded_collate(dataset: SampleDataset):
    """A collate function that sets bad and failed samples apart before ``dataset.collate``."""

    def collate(batch: list) -> tuple[Any, Any, list[BadSample], list[FailedSample]]:
        good = [item for item in batch if not isinstance(item, (BadSample, FailedSample))]
        bad = [item for item in batch if isinstance(item, BadSample)]
        failed = [item for item in batch if isinstance(item, FailedSample)]
        if failed or not good:
            return None, None, bad, failed
        inputs, targets = dataset.collate(good)
        return inputs, targets, bad, failed

    return collate


class EpochLoader:
    """Seeded, shardable batches of ``(inputs, targets)`` over a :class:`SampleDataset`.

    Each pass over the loader is one epoch and advances the epoch counter; :meth:`set_epoch`
    sets it explicitly (a resumed run continues with the epoch it stopped at).
    """

    def __init__(self, dataset: SampleDataset, *, batch_size: int, shuffle: bool, seed: int = 0, workers: int = 0,
                 drop_last: bool = False) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be an int >= 0, got {workers!r}")
        self.dataset = dataset
        self.batch_size, self.shuffle, self.seed, self.workers = batch_size, shuffle, int(seed), workers
        self.drop_last = drop_last
        self.skipped_files: list[BadSample] = []
        self.rank, self.world_size = 0, 1

    def shard(self, rank: int, world_size: int) -> None:
        """Read only this process's share of every epoch (distributed training)."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
        self.rank, self.world_size = rank, world_size

    @property
    def classes(self) -> tuple[str, ...]:
        return self.dataset.classes

    @property
    def num_classes(self) -> int:
        return len(self.dataset.classes)

    @property
    def epoch(self) -> int:
        return self.dataset.epoch

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch used for the next pass (shuffle order and augmentation)."""
        self.dataset.epoch = int(epoch)

    @property
    def skipped(self) -> int:
        """How many bad files were skipped so far (with ``skip_bad=True``)."""
        return len(self.skipped_files)

    def __len__(self) -> int:
        count = -(-len(self.dataset) // self.world_size)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def _torch_loader(self) -> DataLoader:
        generator = torch.Generator()
        generator.manual_seed(self.seed * 1_000_003 + self.dataset.epoch)
        sampler = None
        if self.world_size > 1:
            sampler = DistributedSampler(self.dataset, num_replicas=self.world_size, rank=self.rank,
                                         shuffle=self.shuffle, seed=self.seed)
            sampler.set_epoch(self.dataset.epoch)
        return DataLoader(
            self.dataset, batch_size=self.batch_size, shuffle=self.shuffle if sampler is None else False,
            sampler=sampler, num_workers=self.workers, collate_fn=guarded_collate(self.dataset),
            generator=generator, drop_last=self.drop_last,
        )

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        try:
            for inputs, targets, bad, failed in self._torch_loader():
                if failed:
                    raise failed[0].error
                self.skipped_files.extend(bad)
                if inputs is not None:
                    yield inputs, targets
        finally:
            self.dataset.epoch += 1
