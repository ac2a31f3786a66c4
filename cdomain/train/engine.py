"""The one epoch loop (:func:`fit`), the learners it drives and the tasks they score.

A *task* is a small strategy: the loss of a batch, the sums behind its metrics, and the metric
that ranks epochs (:data:`TASKS`). A *learner* knows what one training step and one evaluation
step are: :class:`Learner` is a network, a task, an optimiser and a per-step schedule; joint
codec fine-tuning (:class:`cdomain.latents.joint.JointLearner`) is another learner over the same
loop. Steps return metric *sums*, which :func:`run_epoch` adds over batches and over ranks
(under ``torchrun``) before the learner turns them into metrics.

Tasks. ``classification``: cross-entropy; top-1 accuracy in percent (higher is better), and
``top5`` (the target among the 5 highest scores; among all of them with fewer than 5 classes).
``counting`` (density maps): CSRNet's Euclidean loss (Li et al. 2018, eq. 1), the squared L2
distance between predicted and true maps of each image, halved and averaged over the batch,
``L = 1 / (2B) * sum_i ||pred_i - true_i||^2``. Metrics over images: ``mae`` = mean |predicted
count - true count|; ``mse`` = the crowd-counting literature's "MSE" (Zhang et al. 2016; Li et
al. 2018), which is the *root* of the mean squared count error; ``rmse`` is the same number
under its precise name. A count is the sum of a density map.
``segmentation`` (per-pixel class maps): per-pixel cross-entropy over labelled pixels (label 255
is ignored); metrics from the confusion matrix summed over the whole split: ``miou`` = the mean
over classes of TP / (TP + FP + FN), taken over the classes that occur in the labels or the
predictions (the usual convention: a class absent from both has no IoU), and ``pixel_acc`` =
correctly labelled pixels / labelled pixels, both in percent; ``miou`` ranks epochs.

Optimiser and schedule: SGD with Nesterov momentum 0.9 (or AdamW), weight decay on weights but
not on biases and norms, a linear warm-up from lr/10, then cosine decay to zero (or another
schedule of :mod:`cdomain.train.schedules`: cosine with a floor, per-epoch exponential or step
decay), stepped per batch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from cdomain.errors import ConfigError
from cdomain.train.distributed import all_reduce_sum

OPTIMIZERS = ("sgd", "adamw")


# ---------------------------------------------------------------------------- tasks


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
        top5 = outputs.detach().topk(min(5, outputs.shape[1]), dim=1).indices  # top-5 beside top-1
        return loss, {"loss": float(loss.detach()) * count, "correct": float((outputs.argmax(1) == targets).sum()),
                      "correct5": float((top5 == targets[:, None]).any(1).sum()), "count": float(count)}

    def summarize(self, sums):
        count = max(1.0, sums["count"])
        return {"loss": sums["loss"] / count, "acc": 100.0 * sums["correct"] / count,
                "top5": 100.0 * sums.get("correct5", 0.0) / count, "images": int(sums["count"])}


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


#: Label of pixels that count in neither loss nor metrics (= cdomain.data.mosaic.IGNORE_INDEX).
IGNORE_INDEX = 255


class Segmentation(Task):
    def loss(self, outputs, targets):
        if outputs.shape[-2:] != targets.shape[-2:]:
            raise ValueError(f"segmentation maps differ in size: the network gives {tuple(outputs.shape[-2:])}, "
                             f"the labels are {tuple(targets.shape[-2:])}")
        loss = nn.functional.cross_entropy(outputs, targets, ignore_index=IGNORE_INDEX)
        count = targets.shape[0]
        confusion = confusion_matrix(outputs.detach().argmax(1), targets, outputs.shape[1])
        sums = {"loss": float(loss.detach()) * count, "count": float(count)}
        sums.update(confusion_sums(confusion))
        return loss, sums

    def summarize(self, sums):
        count = max(1.0, sums["count"])
        classes = 1 + max((int(key[2:]) for key in sums if key.startswith("tp")), default=-1)
        tp, fp, fn = (np.array([sums.get(f"{kind}{c}", 0.0) for c in range(classes)]) for kind in ("tp", "fp", "fn"))
        return {"loss": sums["loss"] / count, **iou_metrics(tp, fp, fn), "images": int(sums["count"])}


TASKS: dict[str, Task] = {
    "classification": Classification("classification", "classification", "acc", True, "%"),
    "counting": Counting("counting", "density", "mae", False),
    "segmentation": Segmentation("segmentation", "segmentation", "miou", True, "%"),
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


def confusion_matrix(predicted: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 ``[K, K]``: entry ``[t, p]`` counts labelled pixels of true class t predicted as p.

    Pixels labelled :data:`IGNORE_INDEX` (or any label outside 0..K-1) are left out.
    """
    target = target.reshape(-1).long()
    predicted = predicted.reshape(-1).long()
    keep = (target >= 0) & (target < num_classes)
    flat = target[keep] * num_classes + predicted[keep]
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes).cpu()


def confusion_sums(confusion: torch.Tensor) -> dict[str, float]:
    """Per-class true positives, false positives and false negatives (additive over batches)."""
    confusion = confusion.double()
    tp = confusion.diagonal()
    fp, fn = confusion.sum(0) - tp, confusion.sum(1) - tp
    sums = {}
    for c in range(confusion.shape[0]):
        sums.update({f"tp{c}": float(tp[c]), f"fp{c}": float(fp[c]), f"fn{c}": float(fn[c])})
    return sums


def iou_metrics(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, float]:
    """``miou`` and ``pixel_acc`` (percent) from per-class TP/FP/FN counts; see the module docstring."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    union = tp + fp + fn
    present = union > 0
    miou = float(np.mean(tp[present] / union[present])) if present.any() else 0.0
    labelled = float((tp + fn).sum())
    return {"miou": 100.0 * miou, "pixel_acc": 100.0 * float(tp.sum()) / max(1.0, labelled)}


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


# ---------------------------------------------------------------------------- optimisation


@dataclass
class OptimConfig:
    """Optimiser and schedule: cosine decay to zero after a linear warm-up."""

    optimizer: str = "sgd"  # "sgd" (momentum, Nesterov) or "adamw"
    lr: float = 0.05  # peak learning rate
    weight_decay: float = 5e-4  # decoupled for AdamW, L2 for SGD
    momentum: float = 0.9  # SGD only
    warmup_epochs: float = 1.0  # linear warm-up from lr/10
    schedule: str = "cosine"  # after the warm-up; see cdomain.train.schedules


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
    from cdomain.train.schedules import parse_schedule, schedule_factor

    factor = schedule_factor(parse_schedule(config.schedule), steps_per_epoch, epochs, config.warmup_epochs)
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


class Optimised:
    """One optimiser with its per-step schedule: the step, the learning rate, and the state a run
    commits with every epoch. Learners set ``optimizer`` and ``scheduler``."""

    optimizer: torch.optim.Optimizer
    scheduler: Any

    def step(self, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` and take one optimiser and schedule step; a non-finite loss is
        refused before anything changes."""
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()}; lower the learning rate (--lr)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        """Optimiser and schedule state, for the per-epoch committed run state."""
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


class Learner(Evaluator, Optimised):
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
        extra_loss = getattr(self.module, "extra_loss", None)  # a model's own training term (SASNet's PRA loss)
        if extra_loss is not None:
            loss = loss + extra_loss(outputs, targets.to(self.device))
        self.step(loss)
        return sums


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
