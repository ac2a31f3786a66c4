"""The one epoch loop (:func:`fit`) and the learner it drives.

A *learner* knows what one training step and one evaluation step are: :class:`Learner` is a
network, a task (:mod:`cdomain.train.tasks`), an optimiser and a per-step schedule; joint codec
fine-tuning (:class:`cdomain.latents.joint.JointLearner`) is another learner over the same loop.
Steps return metric *sums*, which :func:`run_epoch` adds over batches and over ranks (under
``torchrun``) before the learner turns them into metrics.

Optimiser and schedule: SGD with Nesterov momentum 0.9 (or AdamW), weight decay on weights but
not on biases and norms, a linear warm-up from lr/10, then cosine decay to zero, stepped per
batch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from torch import nn
from tqdm import tqdm

from cdomain.train.distributed import all_reduce_sum
from cdomain.train.tasks import Task

OPTIMIZERS = ("sgd", "adamw")


@dataclass
class OptimConfig:
    """Optimiser and schedule: cosine decay to zero after a linear warm-up."""

    optimizer: str = "sgd"  # "sgd" (momentum, Nesterov) or "adamw"
    lr: float = 0.05  # peak learning rate
    weight_decay: float = 5e-4  # decoupled for AdamW, L2 for SGD
    momentum: float = 0.9  # SGD only
    warmup_epochs: float = 1.0  # linear warm-up from lr/10


def build_optimizer(model: nn.Module, config: OptimConfig, steps_per_epoch: int, epochs: int):
    """Optimizer and per-step LR scheduler for ``epochs`` epochs of ``steps_per_epoch`` steps."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    elif config.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=config.lr)
    else:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {config.optimizer!r}")
    total = max(1, steps_per_epoch * epochs)
    warmup = min(total - 1, int(config.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return 0.1 + 0.9 * step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def to_device(inputs: Any, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The input tensor(s) of a batch on ``device``, as a tuple for ``model(*inputs)``."""
    parts = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    return tuple(part.to(device, non_blocking=True) for part in parts)


class Evaluator:
    """Evaluation steps of a network on a task (the part of a learner that sweeps need)."""

    def __init__(self, model: nn.Module, task: Task, device: torch.device) -> None:
        self.model, self.task, self.device = model, task, device

    def begin_epoch(self, epoch: int, training: bool) -> None:
        self.model.train(training)

    @torch.no_grad()
    def eval_batch(self, batch) -> dict[str, float]:
        inputs, targets = batch
        outputs = self.model(*to_device(inputs, self.device))
        return self.task.loss(outputs, targets.to(self.device))[1]

    def summarize(self, sums: dict[str, float], training: bool) -> dict[str, float]:
        return self.task.summarize(sums)


class Learner(Evaluator):
    """A network trained on a task with one optimiser and a per-step schedule.

    ``model`` may be a DistributedDataParallel wrapper; ``module`` is the network itself.
    """

    def __init__(self, model: nn.Module, task: Task, optim: OptimConfig, *, steps_per_epoch: int, epochs: int,
                 device: torch.device, module: nn.Module | None = None) -> None:
        super().__init__(model, task, device)
        self.module = module if module is not None else model
        self.optimizer, self.scheduler = build_optimizer(self.module, optim, steps_per_epoch, epochs)

    def train_batch(self, batch) -> dict[str, float]:
        inputs, targets = batch
        outputs = self.model(*to_device(inputs, self.device))
        loss, sums = self.task.loss(outputs, targets.to(self.device))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()}; lower the learning rate (--lr)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return sums

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        """Optimiser and schedule state, for the per-epoch committed run state."""
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def evaluate(model: nn.Module, task: Task, batches, device: torch.device, *, progress: bool = False) -> dict:
    """The task's metrics of ``model`` over ``batches`` (no training)."""
    return run_epoch(Evaluator(model.to(device), task, device), batches, training=False, description="eval",
                     progress=progress)[0]


def run_epoch(learner, batches: Iterable, *, training: bool, epoch: int = 0, description: str = "",
              progress: bool = False) -> tuple[dict[str, float], float]:
    """One pass over ``batches``; returns the learner's metrics and the seconds it took."""
    learner.begin_epoch(epoch, training)
    step = learner.train_batch if training else learner.eval_batch
    grad = torch.enable_grad() if training else torch.no_grad()
    sums: dict[str, float] = {}
    start = time.perf_counter()
    bar = tqdm(batches, desc=description, total=len(batches), leave=False, disable=not progress, unit="batch")
    for batch in bar:
        with grad:
            result = step(batch)
        for key, value in result.items():
            sums[key] = sums.get(key, 0.0) + value
        if progress and sums.get("count"):
            bar.set_postfix(loss=f"{sums['loss'] / sums['count']:.3f}")
    seconds = time.perf_counter() - start
    keys = sorted(sums)  # every rank has the same batch count (DistributedSampler pads), so the same keys
    sums = dict(zip(keys, all_reduce_sum([sums[key] for key in keys], learner.device)))
    sums.setdefault("count", 0.0)
    sums.setdefault("loss", 0.0)
    return learner.summarize(sums, training), seconds


def fit(
    learner,
    train_batches,
    val_batches,
    *,
    epochs: int,
    first_epoch: int = 1,
    epoch_offset: int = 0,
    progress: bool = False,
    name: str = "",
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> list[dict]:
    """Train ``learner`` from ``first_epoch`` to ``epochs``, validating after each epoch.

    ``train_batches.set_epoch(epoch_offset + epoch)`` seeds each epoch's shuffle and
    augmentation, so a resumed run sees the batches an uninterrupted one would. Each record
    holds ``epoch``, ``train_<metric>`` and ``val_<metric>`` for the learner's metrics, ``lr``,
    ``seconds`` and ``train_images_per_second``; ``on_epoch_end(epoch, record)`` is called after
    every epoch (to log and commit it).
    """
    history = []
    for epoch in range(first_epoch, epochs + 1):
        start = time.perf_counter()
        if hasattr(train_batches, "set_epoch"):  # a loader; plain lists of batches have no epochs
            train_batches.set_epoch(epoch_offset + epoch)
        label = f"{name} epoch {epoch}/{epochs}".strip()
        train, train_seconds = run_epoch(learner, train_batches, training=True, epoch=epoch, description=label,
                                         progress=progress)
        val, _ = run_epoch(learner, val_batches, training=False, epoch=epoch, description="validate", progress=progress)
        record: dict[str, Any] = {"epoch": epoch}
        record.update({f"train_{key}": value for key, value in train.items() if key != "images"})
        record.update({f"val_{key}": value for key, value in val.items() if key != "images"})
        record.update(lr=learner.lr, seconds=time.perf_counter() - start,
                      train_images_per_second=train.get("images", 0) / max(train_seconds, 1e-9))
        history.append(record)
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
    return history
