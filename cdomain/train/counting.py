"""Training and evaluation loops for density-map counting networks (CSRNet and kin).

Batches are ``(inputs, density)`` with density maps ``[B, 1, h, w]`` on the network's output
grid (see :func:`cdomain.data.density.density_target`); a count is the sum of a map.

Loss: CSRNet's Euclidean loss (Li et al. 2018, eq. 1), the squared L2 distance between the
predicted and true maps of each image, halved and averaged over the batch:
``L = 1 / (2B) * sum_i ||pred_i - true_i||^2``. Being a sum over cells, it does not depend on
how finely the map is sampled for a given count error.

Metrics (over images): ``mae`` = mean |predicted count - true count|; ``mse`` = the crowd-counting
literature's "MSE" (Zhang et al. 2016; Li et al. 2018), which is the *root* of the mean squared
count error; ``rmse`` is the same number under its precise name.

The interface mirrors :mod:`cdomain.train.engine`: ``train_one_epoch``, ``evaluate`` and
:func:`fit_counting` (which takes the same :class:`~cdomain.train.engine.OptimConfig` and
optimiser/schedule as ``engine.fit``). Under ``torchrun`` the sums behind the metrics are
reduced over all ranks, as in the engine.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from cdomain.train.distributed import all_reduce_sum
from cdomain.train import engine
from cdomain.train.engine import OptimConfig, _to_device

__all__ = ["density_loss", "train_one_epoch", "evaluate", "fit_counting", "mean_count_baseline", "count_metrics"]


def _check_shapes(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"density maps differ in shape: the network gives {tuple(pred.shape)}, the targets are "
            f"{tuple(target.shape)}; the target stride must be the network's output stride "
            f"and crops multiples of it"
        )


def density_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CSRNet's loss: ``sum((pred - target)^2) / (2 * batch)``."""
    _check_shapes(pred, target)
    return (pred - target).pow(2).sum() / (2 * pred.shape[0])


def count_metrics(abs_error_sum: float, squared_error_sum: float, images: int) -> dict:
    """``mae``, ``mse`` (the literature's, a root mean square) and ``rmse`` from error sums."""
    images = max(1, images)
    root = math.sqrt(squared_error_sum / images)
    return {"mae": abs_error_sum / images, "mse": root, "rmse": root}


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
    """One pass over ``batches`` of ``(inputs, density maps)``; returns loss, count MAE/MSE, timing."""
    model.train()
    loss_sum, abs_sum, sq_sum, seen = 0.0, 0.0, 0.0, 0
    start = time.perf_counter()
    bar = tqdm(batches, desc=description, total=total, leave=False, disable=not progress, unit="batch")
    for inputs, targets in bar:
        parts, targets = _to_device(inputs, device), targets.to(device)
        pred = model(*parts)
        loss = density_loss(pred, targets)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()}; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        count = targets.shape[0]
        with torch.no_grad():
            error = pred.detach().sum(dim=(1, 2, 3)) - targets.sum(dim=(1, 2, 3))
        loss_sum += loss.item() * count
        abs_sum += float(error.abs().sum())
        sq_sum += float(error.pow(2).sum())
        seen += count
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", mae=f"{abs_sum / seen:.2f}")
    seconds = time.perf_counter() - start
    loss_sum, abs_sum, sq_sum, seen = all_reduce_sum([loss_sum, abs_sum, sq_sum, seen], device)
    seen = int(seen)
    return {"loss": loss_sum / max(1, seen), **count_metrics(abs_sum, sq_sum, seen), "images": seen, "seconds": seconds}


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
    """Loss, count MAE and MSE (root mean square, as the literature names it) over ``batches``.

    Returns ``{"loss", "mae", "mse", "rmse", "images"}``; ``mse == rmse``.
    """
    model.eval()
    loss_sum, abs_sum, sq_sum, seen = 0.0, 0.0, 0.0, 0
    for inputs, targets in tqdm(batches, desc=description, total=total, leave=False, disable=not progress, unit="batch"):
        parts, targets = _to_device(inputs, device), targets.to(device)
        pred = model(*parts)
        count = targets.shape[0]
        loss_sum += float(density_loss(pred, targets)) * count
        error = (pred.sum(dim=(1, 2, 3)) - targets.sum(dim=(1, 2, 3))).double()
        abs_sum += float(error.abs().sum())
        sq_sum += float(error.pow(2).sum())
        seen += count
    loss_sum, abs_sum, sq_sum, seen = all_reduce_sum([loss_sum, abs_sum, sq_sum, seen], device)
    seen = int(seen)
    return {"loss": loss_sum / max(1, seen), **count_metrics(abs_sum, sq_sum, seen), "images": seen}


def mean_count_baseline(train_counts: Sequence[float], val_counts: Sequence[float]) -> dict:
    """MAE/MSE on ``val_counts`` of always predicting the mean training count (no network)."""
    train_counts = np.asarray(train_counts, dtype=np.float64)
    if train_counts.size == 0:
        raise ValueError("no training counts to average")
    error = np.asarray(val_counts, dtype=np.float64) - train_counts.mean()
    return {"prediction": float(train_counts.mean()),
            **count_metrics(float(np.abs(error).sum()), float((error**2).sum()), int(error.size))}


def fit_counting(
    model: nn.Module,
    train_batches,
    val_batches,
    *,
    epochs: int,
    optim: OptimConfig,
    device: torch.device,
    progress: bool = True,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> list[dict]:
    """Train a density network for ``epochs`` epochs, evaluating after each (as ``engine.fit``).

    Returns one record per epoch: ``epoch``, ``train_loss``, ``train_mae``, ``val_loss``,
    ``val_mae``, ``val_mse`` (root mean square, see the module docstring), ``lr``, ``seconds``
    and ``train_images_per_second``.
    """
    return engine.fit(
        model, train_batches, val_batches, epochs=epochs, optim=optim, device=device, progress=progress,
        on_epoch_end=on_epoch_end, train_loop=train_one_epoch, eval_loop=evaluate,
        train_metrics=("mae",), val_metrics=("mae", "mse"),
    )
