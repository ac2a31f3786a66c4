"""Training and evaluation loops for classifiers on any cdomain input (one or several tensors)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn
from tqdm import tqdm

from cdomain.train.distributed import all_reduce_sum

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


def _to_device(inputs, device: torch.device) -> tuple[torch.Tensor, ...]:
    parts = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    return tuple(part.to(device, non_blocking=True) for part in parts)


def train_one_epoch(
    model: nn.Module,
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler,
    device: torch.device,
    *,
    description: str = "train",
    progress: bool = True,
    total: int | None = None,
) -> dict:
    """One pass of SGD over ``batches`` of ``(inputs, labels)``; returns loss, accuracy, timing."""
    model.train()
    criterion = nn.CrossEntropyLoss()
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    bar = tqdm(batches, desc=description, total=total, leave=False, disable=not progress, unit="batch")
    for inputs, labels in bar:
        parts, labels = _to_device(inputs, device), labels.to(device)
        logits = model(*parts)
        loss = criterion(logits, labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()}; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        count = labels.numel()
        loss_sum += loss.item() * count
        correct += int((logits.argmax(1) == labels).sum())
        seen += count
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}%")
    seconds = time.perf_counter() - start
    loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], device)
    return {
        "loss": loss_sum / max(1, seen),
        "acc": 100.0 * correct / max(1, seen),
        "images": int(seen),
        "seconds": seconds,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable,
    device: torch.device,
    *,
    description: str = "eval",
    progress: bool = True,
    total: int | None = None,
) -> dict:
    """Loss and top-1 accuracy (percent) of ``model`` over ``batches``."""
    model.eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    loss_sum, correct, seen = 0.0, 0, 0
    for inputs, labels in tqdm(batches, desc=description, total=total, leave=False, disable=not progress, unit="batch"):
        parts, labels = _to_device(inputs, device), labels.to(device)
        logits = model(*parts)
        loss_sum += float(criterion(logits, labels))
        correct += int((logits.argmax(1) == labels).sum())
        seen += labels.numel()
    loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], device)
    return {"loss": loss_sum / max(1, seen), "acc": 100.0 * correct / max(1, seen), "images": int(seen)}


def fit(
    model: nn.Module,
    train_batches,
    val_batches,
    *,
    epochs: int,
    optim: OptimConfig,
    device: torch.device,
    progress: bool = True,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    train_loop: Callable = train_one_epoch,
    eval_loop: Callable = evaluate,
    train_metrics: tuple[str, ...] = ("acc",),
    val_metrics: tuple[str, ...] = ("acc",),
) -> list[dict]:
    """Train for ``epochs`` epochs, evaluating after each; returns one metrics dict per epoch.

    ``train_loop``/``eval_loop`` are the task's loops (classification by default, see
    :mod:`cdomain.train.counting` for density maps); ``train_metrics``/``val_metrics`` name the
    entries of their results recorded as ``train_<name>`` / ``val_<name>`` beside the losses.
    """
    model.to(device)
    optimizer, scheduler = build_optimizer(model, optim, len(train_batches), epochs)
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        train = train_loop(
            model, train_batches, optimizer, scheduler, device,
            description=f"epoch {epoch}/{epochs}", progress=progress, total=len(train_batches),
        )
        val = eval_loop(model, val_batches, device, description="validate", progress=progress, total=len(val_batches))
        record = {"epoch": epoch, "train_loss": train["loss"]}
        record.update({f"train_{name}": train[name] for name in train_metrics})
        record["val_loss"] = val["loss"]
        record.update({f"val_{name}": val[name] for name in val_metrics})
        record.update(
            lr=optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - start,
            train_images_per_second=train["images"] / max(train["seconds"], 1e-9),
        )
        history.append(record)
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
    return history
