"""Tasks as small strategies: the loss of a batch, the sums behind its metrics, and the metric
that ranks epochs.

``classification``: cross-entropy; top-1 accuracy in percent (higher is better).

``counting`` (density maps): CSRNet's Euclidean loss (Li et al. 2018, eq. 1), the squared L2
distance between predicted and true maps of each image, halved and averaged over the batch,
``L = 1 / (2B) * sum_i ||pred_i - true_i||^2``. Metrics over images: ``mae`` = mean |predicted
count - true count|; ``mse`` = the crowd-counting literature's "MSE" (Zhang et al. 2016; Li et
al. 2018), which is the *root* of the mean squared count error; ``rmse`` is the same number
under its precise name. A count is the sum of a density map.

Sums (not means) are returned per batch so that they add up over batches and over ranks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from cdomain.errors import ConfigError


@dataclass(frozen=True)
class Task:
    """How a task scores a batch and which metric picks the best epoch."""

    name: str
    model_task: str  # the ``task`` field of the InputSpec its models declare
    metric: str  # the validation metric that ranks epochs
    higher_is_better: bool
    unit: str = ""

    def better(self, value: float, best: float | None) -> bool:
        return best is None or (value > best if self.higher_is_better else value < best)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The batch's mean loss (to optimise) and its metric sums."""
        raise NotImplementedError

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        """Metrics from sums added over batches (and ranks)."""
        raise NotImplementedError


class Classification(Task):
    def loss(self, outputs, targets):
        loss = nn.functional.cross_entropy(outputs, targets)
        count = targets.numel()
        return loss, {"loss": float(loss.detach()) * count, "correct": float((outputs.argmax(1) == targets).sum()),
                      "count": float(count)}

    def summarize(self, sums):
        count = max(1.0, sums["count"])
        return {"loss": sums["loss"] / count, "acc": 100.0 * sums["correct"] / count, "images": int(sums["count"])}


class Counting(Task):
    def loss(self, outputs, targets):
        loss = density_loss(outputs, targets)
        error = (outputs.detach().sum(dim=(1, 2, 3)) - targets.sum(dim=(1, 2, 3))).double()
        count = targets.shape[0]
        return loss, {"loss": float(loss.detach()) * count, "abs_error": float(error.abs().sum()),
                      "squared_error": float(error.pow(2).sum()), "count": float(count)}

    def summarize(self, sums):
        count = int(sums["count"])
        return {"loss": sums["loss"] / max(1, count), **count_metrics(sums["abs_error"], sums["squared_error"], count),
                "images": count}


TASKS: dict[str, Task] = {
    "classification": Classification("classification", "classification", "acc", True, "%"),
    "counting": Counting("counting", "density", "mae", False),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError("task", f"must be one of {', '.join(TASKS)}, got {name!r}")
    return TASKS[name]


def task_of_model(model_task: str) -> Task:
    """The task whose models declare ``model_task`` in their InputSpec."""
    for task in TASKS.values():
        if task.model_task == model_task:
            return task
    raise ValueError(f"no task trains {model_task!r} models")


def density_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CSRNet's loss: ``sum((pred - target)^2) / (2 * batch)``."""
    if pred.shape != target.shape:
        raise ValueError(
            f"density maps differ in shape: the network gives {tuple(pred.shape)}, the targets are "
            f"{tuple(target.shape)}; the target stride must be the network's output stride and crops multiples of it"
        )
    return (pred - target).pow(2).sum() / (2 * pred.shape[0])


def count_metrics(abs_error_sum: float, squared_error_sum: float, images: int) -> dict:
    """``mae``, ``mse`` (the literature's, a root mean square) and ``rmse`` from error sums."""
    images = max(1, images)
    root = math.sqrt(squared_error_sum / images)
    return {"mae": abs_error_sum / images, "mse": root, "rmse": root}


def mean_count_baseline(train_counts: Sequence[float], val_counts: Sequence[float]) -> dict:
    """MAE/MSE on ``val_counts`` of always predicting the mean training count (no network)."""
    train_counts = np.asarray(train_counts, dtype=np.float64)
    if train_counts.size == 0:
        raise ValueError("no training counts to average")
    error = np.asarray(val_counts, dtype=np.float64) - train_counts.mean()
    return {"prediction": float(train_counts.mean()),
            **count_metrics(float(np.abs(error).sum()), float((error**2).sum()), int(error.size))}
