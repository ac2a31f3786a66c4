"""Artifact correction as a mitigation: training modes ``ac`` and ``ttac``, and corrected evaluation.

Following Ehrlich et al. ("Analyzing and Mitigating JPEG Compression Defects in Deep Learning",
ICCVW 2021), a correction network (:mod:`cdomain.models.artifact`) sits in front of a task
network that was trained on uncompressed images and stays as it is:

- ``ac`` (off-the-shelf): the corrector learns to restore the uncompressed image, an L1 (or
  MSE, ``--ac-loss``) loss on RGB pixels (0..1) against the uncompressed crop; each training
  crop is compressed at a quality drawn from ``--aug-quality`` (10..90). No task network is
  needed; given ``--task-model``, validation also scores the first one behind the corrector.
- ``ttac`` (task-targeted): one or more frozen task networks (``--task-model A,B``: several are
  summed into one loss, the "multi-head" variant) and the loss
  ``|| Task(x) - Task(AC(JPEG_q(x))) ||_1`` on their logits (``--ttac-loss logits``), or on their
  backbone features ``forward_features`` (``--ttac-loss features``, for dense tasks). No labels.
  Start from an off-the-shelf corrector with ``--init``, as the paper does.

A corrector trained against one task network can be put in front of another ("transfer"):
``cdomain-eval --correct AC.safetensors OTHER.safetensors``. The task networks never change:
they are frozen (``requires_grad`` off) and kept in evaluation mode, so their BatchNorm
statistics stay too.

Validation compresses the validation images at ``--quality`` (default: the low end of
``--aug-quality``) with the cached re-encodes a quality sweep uses. The metric that ranks epochs
is the correction loss (lower is better); with a task network, ``val_<metric>`` (accuracy, MAE,
...) of the corrected images is reported beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cdomain.checkpoint import Checkpoint, check_fits, load_checkpoint
from cdomain.errors import CheckpointError, ConfigError
from cdomain.train.engine import OptimConfig, Optimised, Task, build_optimizer, task_of_model, to_device

if TYPE_CHECKING:
    from cdomain.train.driver import TrainingRun

#: The task-network outputs TTAC compares.
TTAC_LOSSES = ("logits", "features")
AC_LOSSES = ("l1", "mse")


class CorrectionTask(Task):
    """Ranks correction epochs by their loss (lower is better); sums come from the learner."""

    def summarize(self, sums):
        count = max(1.0, sums["count"])
        return {"loss": sums["loss"] / count, "images": int(sums["count"])}


CORRECTION = CorrectionTask("correction", "correction", "loss", False)


# ---------------------------------------------------------------------------- task networks


def load_task_models(paths: Sequence[str | Path], classes: Sequence[str], model_task: str | None,
                     device: torch.device, what: str = "--task-model") -> list[Checkpoint]:
    """Load and freeze task networks (checked against the data's task and classes)."""
    loaded = []
    for path in paths:
        checkpoint = load_checkpoint(path)
        if checkpoint.header.kind != "model" or checkpoint.header.task == "correction":
            raise CheckpointError(f"{what} {path}: not a task network (a {checkpoint.header.task} checkpoint)")
        if checkpoint.input_spec.input not in ("dct", "rgb"):
            raise CheckpointError(f"{what} {path}: artifact correction feeds dct or rgb networks, this one reads "
                                  f"{checkpoint.input_spec.input}")
        if model_task is not None:
            check_fits(checkpoint, tuple(classes), model_task, None, what)
        freeze(checkpoint.model)
        checkpoint.model.to(device)
        loaded.append(checkpoint)
    return loaded


def freeze(model: nn.Module) -> nn.Module:
    """No gradients into ``model`` and evaluation mode (BatchNorm statistics stay as they are)."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def task_outputs(checkpoint: Checkpoint, y: torch.Tensor, cbcr: torch.Tensor, basis: torch.Tensor,
                 features: bool = False) -> torch.Tensor:
    """The task network's logits (or backbone features) for split-layout coefficients."""
    from cdomain.models.artifact import task_inputs

    inputs = task_inputs(y, cbcr, checkpoint.input_spec, checkpoint.stats, basis)
    model = checkpoint.model
    if not features:
        return model(*inputs)
    if not hasattr(model, "forward_features"):
        raise ConfigError("ttac_loss", f"{checkpoint.path}: {checkpoint.header.name} has no forward_features")
    return model.forward_features(*inputs)


# ---------------------------------------------------------------------------- learner


class CorrectionLearner(Optimised):
    """Trains a corrector (``mode`` ``ac`` or ``ttac``) in front of frozen task networks."""

    def __init__(self, corrector: nn.Module, task_models: list[Checkpoint], optim: OptimConfig, *, mode: str,
                 ac_loss: str = "l1", ttac_loss: str = "logits", steps_per_epoch: int, epochs: int,
                 device: torch.device) -> None:
        if mode not in ("ac", "ttac"):
            raise ValueError(f"mode must be ac or ttac, got {mode!r}")
        if mode == "ttac" and not task_models:
            raise ConfigError("task_model", "--mode ttac needs at least one frozen task network")
        self.model = self.module = corrector
        self.task_models, self.mode, self.ac_loss, self.ttac_loss = task_models, mode, ac_loss, ttac_loss
        self.device, self.task = device, CORRECTION
        self.scored = task_of_model(task_models[0].input_spec.task) if task_models else None
        self.optimizer, self.scheduler = build_optimizer(corrector, optim, steps_per_epoch, epochs)

    def begin_epoch(self, epoch: int, training: bool) -> None:
        self.model.train(training)
        for checkpoint in self.task_models:
            checkpoint.model.eval()

    def loss(self, inputs) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The batch's mean correction loss and the corrected coefficients."""
        y, cbcr, tables, y0, cbcr0 = to_device(inputs, self.device)
        y1, cbcr1 = self.model(y, cbcr, tables)
        basis = self.module.basis
        if self.mode == "ac":
            from cdomain.models.artifact import decode_pixels

            restored, clean = decode_pixels(y1, cbcr1, basis) / 255.0, decode_pixels(y0, cbcr0, basis) / 255.0
            loss = F.l1_loss(restored, clean) if self.ac_loss == "l1" else F.mse_loss(restored, clean)
            return loss, (y1, cbcr1)
        features = self.ttac_loss == "features"
        loss = torch.zeros((), device=self.device)
        for checkpoint in self.task_models:  # multi-head: one loss summed over the frozen networks
            with torch.no_grad():
                reference = task_outputs(checkpoint, y0, cbcr0, basis, features)
            loss = loss + F.l1_loss(task_outputs(checkpoint, y1, cbcr1, basis, features), reference)
        return loss, (y1, cbcr1)

    def train_batch(self, batch) -> dict[str, float]:
        inputs, _ = batch  # labels are never used
        loss, _ = self.loss(inputs)
        self.step(loss)
        count = float(inputs[0].shape[0])
        return {"loss": float(loss.detach()) * count, "count": count}

    @torch.no_grad()
    def eval_batch(self, batch) -> dict[str, float]:
        inputs, targets = batch
        loss, (y1, cbcr1) = self.loss(inputs)
        count = float(inputs[0].shape[0])
        sums = {"loss": float(loss) * count, "count": count}
        if self.scored is not None:  # the first task network's metric on the corrected images
            checkpoint = self.task_models[0]
            outputs = task_outputs(checkpoint, y1, cbcr1, self.module.basis)
            scored = self.scored.loss(outputs, targets.to(self.device))[1]
            sums.update({f"task_{key}": value for key, value in scored.items()})
        return sums

    def summarize(self, sums: dict[str, float], training: bool) -> dict[str, float]:
        result = CORRECTION.summarize(sums)
        task_sums = {key[5:]: value for key, value in sums.items() if key.startswith("task_")}
        if self.scored is not None and task_sums:
            metrics = self.scored.summarize(task_sums)
            result["task_loss"] = metrics.pop("loss")
            metrics.pop("images", None)
            result.update(metrics)
        return result


# ---------------------------------------------------------------------------- driver strategy


class CorrectionInput:
    """The driver's input strategy for ``--mode ac|ttac`` (see :mod:`cdomain.train.inputs`)."""

    codec = None
    task = CORRECTION

    def setup(self, run: "TrainingRun") -> None:
        config = run.config
        if run.dist.enabled:
            raise ConfigError("mode", f"--mode {config.mode} runs in one process; launch it without torchrun")
        if config.input != "dct":
            raise ConfigError("input", f"--mode {config.mode} reads coefficients: use --input dct (the task "
                                       "networks behind the corrector may read dct or rgb)")
        data_task = task_of_model_name(config.task)
        self.task_models = load_task_models(config.task_model, run.dataset.classes, data_task, run.device)
        self.crop = config.crop if config.crop is not None else (None if run.dataset.embedded else 224)
        self.info = {"task_models": [str(path) for path in config.task_model], "correction": config.mode}

    def build_model(self, run: "TrainingRun"):
        from cdomain.models import create_model

        config = run.config
        try:
            model = create_model(config.model, **config.model_args)
        except (TypeError, ValueError) as error:
            raise ConfigError("model", f"{config.model}: {error}") from None
        if model.input_spec.task != "correction":
            raise ConfigError("model", f"--mode {config.mode} trains a correction network (artifact_corrector), "
                                       f"not {config.model}")
        return model, None

    def model_kwargs(self, run: "TrainingRun") -> dict:
        return {}

    def compute_stats(self, run: "TrainingRun", spec, quality) -> None:
        return None

    def loader(self, run: "TrainingRun", spec, split: str, quality: int | None, train: bool, stats):
        from cdomain.data.correction import PairLoader
        from cdomain.data.quality import RandomQuality, reencoded_samples

        config = run.config
        originals = run.dataset.split(split)
        common = dict(batch_size=config.batch_size, crop=self.crop, seed=config.seed, workers=config.workers,
                      skip_bad=config.skip_bad, target=run.dataset.target(split))
        if train:
            low, high = config.aug_quality
            return PairLoader(originals, transform=RandomQuality(low, high, config.requant), augment=True, **common)
        quality = quality if quality is not None else config.aug_quality[0]
        compressed = reencoded_samples(originals, quality, config.requant, progress=run.progress)
        return PairLoader(originals, compressed, augment=False, **common)

    def learner(self, run: "TrainingRun", model, trained, steps_per_epoch: int, epochs: int):
        from cdomain.train.inputs import optim_config

        config = run.config
        return CorrectionLearner(model, self.task_models, optim_config(config), mode=config.mode,
                                 ac_loss=config.ac_loss, ttac_loss=config.ttac_loss,
                                 steps_per_epoch=steps_per_epoch, epochs=epochs, device=run.device)

    def epoch_extras(self, run: "TrainingRun", val) -> dict:
        return {}


def task_of_model_name(task: str) -> str:
    """The InputSpec task of the networks that ``--task`` trains."""
    from cdomain.train.engine import get_task

    return get_task(task).model_task


# ---------------------------------------------------------------------------- evaluation


def load_corrector(path: str | Path) -> Checkpoint:
    """A correction checkpoint (``cdomain-eval --correct``); CheckpointError for anything else."""
    checkpoint = load_checkpoint(path)
    if checkpoint.header.kind != "model" or checkpoint.header.task != "correction":
        raise CheckpointError(f"--correct {path}: a {checkpoint.header.task} checkpoint, not a correction network "
                              "(train one with cdomain-train --mode ac or ttac)")
    return checkpoint


class CorrectedNetwork(nn.Module):
    """A frozen task network behind an artifact corrector, as one network of the pair loader's
    inputs ``(y, cbcr, tables, y0, cbcr0)``; the uncompressed ``y0, cbcr0`` are not used."""

    def __init__(self, task_model: Checkpoint, corrector: nn.Module) -> None:
        super().__init__()
        self.task_model, self.corrector = task_model, corrector

    def forward(self, y: torch.Tensor, cbcr: torch.Tensor, tables: torch.Tensor, *uncompressed) -> torch.Tensor:
        y1, cbcr1 = self.corrector(y, cbcr, tables)
        return task_outputs(self.task_model, y1, cbcr1, self.corrector.basis)


def evaluate_corrected(task_model: Checkpoint, corrector: Checkpoint, originals, compressed, *, crop: int | None,
                       batch_size: int = 64, workers: int = 0, device: torch.device = torch.device("cpu"),
                       target=None, skip_bad: bool = False, strict: bool = True, transcode=None,
                       task: Task | None = None) -> dict:
    """The task network's loss and metrics on ``compressed`` files corrected by ``corrector``.

    ``originals`` are the uncompressed files the compressed ones were made from (same order); they
    only give the crop regions' layout and are not fed to the task network. The options mean what
    they mean to :func:`cdomain.evaluate.sweep.evaluate_checkpoint` (the uncorrected evaluation):
    ``strict``/``transcode`` how files are read, ``task`` a replacement scoring (coarse classes).
    """
    from cdomain.data.correction import PairLoader
    from cdomain.evaluate.sweep import evaluate_loader

    freeze(task_model.model.to(device))
    network = CorrectedNetwork(task_model, corrector.model.to(device))
    loader = PairLoader(originals, compressed, batch_size=batch_size, crop=crop, workers=workers,
                        skip_bad=skip_bad, target=target, strict=strict, transcode=transcode)
    return evaluate_loader(network, task or task_of_model(task_model.input_spec.task), loader, device)
