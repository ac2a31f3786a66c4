"""Shared-memory slots that carry packed batches from loader workers to the main process.

torch's DataLoader moves every tensor a worker returns into new shared memory: per batch the
worker creates, fills and maps fresh pages, sends a file descriptor, and the main process maps
and faults the pages in again. For the batch path on a CPU that costs about as much as the batch
kernel itself (about 60 us per 224x224 image of 4:2:0 at fbs 16). :class:`BatchSlots` allocates a
few slots per worker once, before the workers start; a worker copies its packed batch into a
free slot of its own and returns a small :class:`SlotTicket`, and the main process reads the
batch there and frees the slot as soon as the batch kernel has run.

Only the owning worker marks a slot busy and only the main process marks it free again, so no
lock is needed. A worker that finds no free slot, or a batch larger than a slot (a merged batch
that mixes subsamplings puts chroma on the luma grid), returns the batch as usual: slots are an
optimisation, never a condition. The slots are sized for 4:2:0 and skipped when the shared-memory
file system has less than twice their size free, so a small ``/dev/shm`` (a container's 64 MB)
is never filled by them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch

from cdomain.data.batch_path import CoefficientBatch

#: Slots per worker: the DataLoader keeps two batches per worker in flight (prefetch_factor),
#: one more is being filled, and one spare.
DEPTH = 4
_ALIGN = 64
_SHARED_FS = "/dev/shm"
T = TypeVar("T")


@dataclass(frozen=True)
class SlotTicket:
    """A packed batch left in slot ``slot``: each tensor's ``(name, dtype, shape, offset)``."""

    slot: int
    tensors: tuple[tuple[str, torch.dtype, tuple[int, ...], int], ...]
    upsample: tuple[int, int]


def slot_bytes(batch_size: int, fbs: int, rows: int, cols: int) -> int:
    """Bytes of one slot: a batch of 4:2:0 samples of ``rows x cols`` luma blocks, with tables
    and requantization targets."""
    per_sample = 2 * fbs * rows * cols + 2 * 2 * fbs * (rows // 2) * (cols // 2) + 2 * 3 * 64 * 4
    return batch_size * per_sample + 4 * _ALIGN


class BatchSlots:
    """``DEPTH`` shared-memory slots of ``size`` bytes for each of ``workers`` loader workers."""

    def __init__(self, workers: int, size: int) -> None:
        self.size = size
        self.buffers = torch.empty((workers * DEPTH, size), dtype=torch.uint8).share_memory_()
        self.busy = torch.zeros(workers * DEPTH, dtype=torch.int32).share_memory_()
        self.taken = 0  # batches the main process read from slots (for tests and benchmarks)

    @classmethod
    def create(cls, workers: int, size: int) -> "BatchSlots | None":
        """Slots, or None when the shared-memory file system lacks twice their size."""
        try:
            stats = os.statvfs(_SHARED_FS)
        except OSError:
            return None
        if stats.f_bavail * stats.f_frsize < 2 * workers * DEPTH * size:
            return None
        return cls(workers, size)

    def put(self, batch: CoefficientBatch) -> "SlotTicket | CoefficientBatch":
        """In a worker: ``batch`` copied into a free slot of this worker, as a ticket; ``batch``
        itself outside a worker, when it does not fit, or when no slot of this worker is free."""
        info = torch.utils.data.get_worker_info()
        if info is None:
            return batch
        placed, offset = [], 0
        for name, tensor in batch._tensors().items():
            placed.append((name, tensor, offset))
            offset += -(-tensor.numel() * tensor.element_size() // _ALIGN) * _ALIGN
        if offset > self.size:
            return batch
        first = info.id * DEPTH
        free = [slot for slot in range(first, first + DEPTH) if int(self.busy[slot]) == 0]
        if not free:
            return batch
        slot = free[0]
        for name, tensor, start in placed:
            self._view(slot, tensor.dtype, tuple(tensor.shape), start).copy_(tensor)
        self.busy[slot] = 1
        layout = tuple((name, tensor.dtype, tuple(tensor.shape), start) for name, tensor, start in placed)
        return SlotTicket(slot, layout, batch.upsample)

    def _view(self, slot: int, dtype: torch.dtype, shape: tuple[int, ...], start: int) -> torch.Tensor:
        nbytes = math.prod(shape) * dtype.itemsize
        return self.buffers[slot, start : start + nbytes].view(dtype).view(shape)

    def take(self, ticket: SlotTicket) -> CoefficientBatch:
        """In the main process: the batch in the ticket's slot (views; valid until :meth:`release`)."""
        tensors = {name: self._view(ticket.slot, dtype, shape, start) for name, dtype, shape, start in ticket.tensors}
        self.taken += 1
        return CoefficientBatch(**{"targets": None, **tensors}, upsample=ticket.upsample)

    def release(self, ticket: SlotTicket) -> None:
        """Give the slot back to its worker."""
        self.busy[ticket.slot] = 0

    def read(self, ticket: SlotTicket, use: Callable[[CoefficientBatch], T]) -> T:
        """``use(batch)`` on the batch in the ticket's slot, which then goes back to its worker
        (also when ``use`` fails); ``use`` must not keep the batch's tensors."""
        try:
            return use(self.take(ticket))
        finally:
            self.release(ticket)
