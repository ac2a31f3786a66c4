"""Multi-process training with torch.distributed, as launched by ``torchrun``.

``torchrun --nproc_per_node=N -m cdomain.cli.train ...`` sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``; :func:`setup` then joins the process group (NCCL on GPUs, gloo on CPU). Each
rank reads its own shard of every epoch (a distributed sampler in the loader), gradients are
averaged by DistributedDataParallel, metrics are summed over ranks, and only rank 0 writes files.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: rank, number of processes, device index."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun; a no-op for a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world_size, local_rank)


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (identity without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def replicas_identical(model: torch.nn.Module) -> bool:
    """Whether every rank holds bit-identical parameters and buffers (a check DDP should pass)."""
    state = [value.detach().double().flatten().cpu() for value in model.state_dict().values() if value.numel()]
    local = torch.cat(state) if state else torch.zeros(1, dtype=torch.float64)
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group together: every rank waits for the others (rank 0 may still be
    writing the summary) before it is torn down. A rank that destroyed its gloo group while a peer
    still used it could abort at exit ("terminate called without an active exception"); so could
    a group whose last reference (a DistributedDataParallel reducer caught in a reference cycle)
    lived on into interpreter shutdown, when gloo's threads can no longer finish cleanly: the
    caller drops its wrapper and the cycles are collected first, so the group ends here."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
