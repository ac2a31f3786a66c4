"""One training run: data at the right qualities, phases, checkpoints, metrics, resume, DDP.

:func:`run_training` takes the resolved configuration of ``cdomain-train`` (a namespace of its
options) and does everything the command promises; the command itself only parses flags. The
output folder holds ``config.yaml``, ``metrics.jsonl``, ``model.safetensors`` (latest weights),
``best.safetensors``, one ``phase<i>-q<Q>.safetensors`` per finished phase, ``summary.json``,
and the resumable state (:mod:`cdomain.train.state`).
"""

from __future__ import annotations

import json
import sys
import time
from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import yaml

from cdomain.atomic import atomic_write
from cdomain.data.dct_transforms import ChannelStats
from cdomain.data.embedded import EMBEDDED, embedded_dataset, embedded_root
from cdomain.data.folder import SampleList, resolve_source
from cdomain.data.loader import DCTLoader, JPEGLoader, RGBLoader
from cdomain.data.quality import RandomQuality, reencoded_samples
from cdomain.models import create_model, list_models
from cdomain.data.crowd import CROWD, crowd_root, crowd_split
from cdomain.data.density import DensityTarget, density_target
from cdomain.train import counting, distributed, engine
from cdomain.train.checkpoint import load_checkpoint, save_checkpoint
from cdomain.train.engine import OptimConfig, build_optimizer
from cdomain.train.modes import Phase, plan_phases
from cdomain.train.state import RunState, commit_epoch, load_state

LOADERS: dict[str, type[JPEGLoader]] = {"dct": DCTLoader, "rgb": RGBLoader}


@dataclass(frozen=True)
class Task:
    """What a run learns: its loops, the validation metric that picks the best epoch, defaults."""

    name: str
    model_task: str  # the "task" recorded in the models' input_spec
    train_one_epoch: Callable
    evaluate: Callable
    metric: str  # key of the validation record that ranks epochs
    higher_is_better: bool
    default_data: str
    default_models: dict[str, str]  # per --input
    default_optim: dict  # optimizer, lr, weight_decay, batch_size when not given

    def better(self, value: float, best: float | None) -> bool:
        return best is None or (value > best if self.higher_is_better else value < best)


TASKS = {
    "classification": Task("classification", "classification", engine.train_one_epoch, engine.evaluate, "acc", True, "textures",
                           {"dct": "resnet_dct_small", "rgb": "resnet_rgb_small"},
                           {"optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4, "batch_size": 64}),
    "counting": Task("counting", "density", counting.train_one_epoch, counting.evaluate, "mae", False, "crowd",
                     {"dct": "csrnet_dct_small", "rgb": "csrnet_small"},
                     # measured on the embedded crowd set: lr 1e-2 gave the lowest MAE for both inputs
                     {"optimizer": "adamw", "lr": 1e-2, "weight_decay": 1e-4, "batch_size": 16}),
}


class UsageError(Exception):
    """A configuration problem the user can fix; reported without a traceback."""


def log(message: str) -> None:
    print(message, flush=True)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine")
    return device


def models_for_input(kind: str, task: str = "classification") -> list[str]:
    """Registered models for ``task`` whose input is ``kind`` (``"dct"``, ``"rgb"``, ``"latent"``)."""
    names = []
    for name in list_models():
        try:
            with torch.device("meta"):  # only the input spec is needed: allocate nothing
                spec = create_model(name, **({"fbs": 8} if kind == "dct" else {})).input_spec
        except (TypeError, ValueError):
            continue
        if spec["input"] == kind and spec.get("task", "classification") == TASKS[task].model_task:
            names.append(name)
    return names


def build_model(config: Namespace, num_classes: int) -> torch.nn.Module:
    kwargs = {"fbs": config.fbs} if config.input == "dct" else {}
    if config.task == "classification":
        kwargs["num_classes"] = num_classes
    try:
        model = create_model(config.model, **kwargs)
    except (KeyError, ValueError, TypeError) as error:
        raise UsageError(f"--model {config.model}: {error}") from None
    spec = model.input_spec
    if spec["input"] != config.input or spec.get("task", "classification") != TASKS[config.task].model_task:
        raise UsageError(
            f"--model {config.model} is a {spec.get('task', 'classification')} model on {spec['input']} input, "
            f"not --task {config.task} --input {config.input}; models for that: "
            f"{', '.join(models_for_input(config.input, config.task))}"
        )
    return model


def crowd_samples(name: str) -> tuple[SampleList, SampleList, DensityTarget, DensityTarget]:
    """Train/val samples of an embedded crowd dataset and their density-map targets."""
    if not crowd_root(name).is_dir():
        log(f"generating the embedded crowd dataset {name!r} into {crowd_root(name)} (once)")
    (train_paths, train_points), (val_paths, val_points) = crowd_split(name, "train"), crowd_split(name, "val")
    as_samples = lambda paths: SampleList(tuple(paths), (-1,) * len(paths), ())  # noqa: E731
    return as_samples(train_paths), as_samples(val_paths), density_target(train_points), density_target(val_points)


def base_samples(config: Namespace) -> tuple[SampleList, SampleList, bool]:
    """Training and validation samples at their original quality; and whether data is embedded."""
    embedded = config.data in EMBEDDED and not Path(config.data).exists()
    if embedded:
        if not embedded_root(config.data).is_dir():
            log(f"generating the embedded dataset {config.data!r} into {embedded_root(config.data)} (once)")
        root = embedded_dataset(config.data)
    else:
        root = Path(config.data)
        if not (root / "train").is_dir() or not (root / "val").is_dir():
            raise UsageError(
                f"--data {root}: expected an embedded dataset name ({', '.join(EMBEDDED)}) "
                "or a folder with train/ and val/ sub-folders"
            )
    try:
        train, val = resolve_source(root / "train"), resolve_source(root / "val")
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(f"--data {config.data}: {error}") from None
    if train.classes != val.classes:
        raise UsageError(f"--data {config.data}: train and val have different class folders")
    return train, val, embedded


class TrainingRun:
    """Carries a configured run through its phases, writing everything into the output folder."""

    def __init__(self, config: Namespace, output: Path) -> None:
        self.config, self.output = config, output
        if getattr(config, "threads", 0) > 0:
            torch.set_num_threads(config.threads)
        self.device = resolve_device(config.device)
        self.dist = distributed.setup(self.device)
        self.progress = not config.quiet and sys.stderr.isatty() and self.dist.is_main
        self.phases = plan_phases(
            config.mode, epochs=config.epochs, quality=config.quality,
            target_quality=config.target_quality, curriculum=config.curriculum,
        )
        self.task = TASKS[config.task]
        self.targets: tuple[DensityTarget | None, DensityTarget | None] = (None, None)
        if config.task == "counting":
            if config.data not in CROWD:
                raise UsageError(f"--task counting reads an embedded crowd dataset ({', '.join(CROWD)}), not {config.data!r}")
            self.train_base, self.val_base, *targets = crowd_samples(config.data)
            self.targets = tuple(targets)
            embedded = True
        else:
            self.train_base, self.val_base, embedded = base_samples(config)
        self.crop = config.crop if config.crop is not None else (None if embedded else 224)
        self.metrics_path = output / "metrics.jsonl"

    # ---------------------------------------------------------------- data

    def samples(self, base: SampleList, quality: int | None) -> SampleList:
        if quality is None:
            return base
        if self.dist.is_main:
            samples = reencoded_samples(base, quality, self.config.requant, progress=self.progress)
        distributed.barrier()  # the other ranks reuse rank 0's cache
        if not self.dist.is_main:
            samples = reencoded_samples(base, quality, self.config.requant)
        return samples

    def loader(self, samples: SampleList, train: bool, stats: ChannelStats | None) -> JPEGLoader:
        config = self.config
        transform = None
        if train and config.mode == "jpeg-aug":
            transform = RandomQuality(config.aug_quality[0], config.aug_quality[1], config.requant)
        loader = LOADERS[config.input](
            samples, batch_size=config.batch_size, fbs=config.fbs if config.input == "dct" else 1,
            layout=self.layout, crop=self.crop, augment=train, seed=config.seed, workers=config.workers,
            skip_bad=config.skip_bad, stats=stats, drop_last=train, transform=transform,
            target=self.targets[0 if train else 1],
        )
        if self.dist.enabled:
            loader.shard(self.dist.rank, self.dist.world_size)
        if train and len(loader) == 0:
            raise UsageError(f"--data {config.data}: fewer training images than one batch ({config.batch_size})")
        return loader

    # ---------------------------------------------------------------- model

    def initial_model(self) -> tuple[torch.nn.Module, ChannelStats | None]:
        num_classes = len(self.train_base.classes)
        if self.config.init is None:
            return build_model(self.config, num_classes), None
        checkpoint = load_checkpoint(self.config.init)
        if checkpoint.model.input_spec.get("task", "classification") != self.task.model_task:
            raise UsageError(f"--init {self.config.init}: the checkpoint is not a {self.config.task} model")
        if self.config.task == "classification" and checkpoint.model.num_classes != num_classes:
            raise UsageError(
                f"--init {self.config.init}: the checkpoint has {checkpoint.model.num_classes} classes, the data {num_classes}"
            )
        if checkpoint.model.input_spec["input"] != self.config.input:
            raise UsageError(f"--init {self.config.init}: the checkpoint reads {checkpoint.model.input_spec['input']} input")
        log(f"initialised from {self.config.init} ({checkpoint.info})")
        return checkpoint.model, checkpoint.stats

    # ---------------------------------------------------------------- run

    def run(self) -> dict:
        config, output = self.config, self.output
        torch.manual_seed(config.seed)
        model, stats = self.initial_model()
        self.layout = model.input_spec["layout"] if config.input == "dct" else "merged"
        state, optim_state = RunState(), None
        if config.resume:
            state, optim_state = load_state(output)
            checkpoint = load_checkpoint(output / state.weights)
            model, stats = checkpoint.model, checkpoint.stats
            log(f"resuming after phase {state.phase + 1} epoch {state.epoch} from {output / state.weights}")
        model.to(self.device)
        if stats is None:
            first = self.samples(self.train_base, self.phases[0].train_quality)
            stats = self.loader(first, False, None).compute_stats(config.stats_images)
        if self.dist.is_main:
            self._start_outputs(state if config.resume else None)
            log(f"data: {config.data} ({len(self.train_base)} train / {len(self.val_base)} val images, "
                f"task {config.task}); mode {config.mode}: "
                + ", ".join(f"{p.name} ({p.epochs} epochs)" for p in self.phases))
            log(f"model: {model_name(model)} on {self.device} x{self.dist.world_size}, input {model.input_spec}, "
                f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
        trained = torch.nn.parallel.DistributedDataParallel(model) if self.dist.enabled else model
        start = time.perf_counter()
        last = {}
        for index, phase in enumerate(self.phases):
            if config.resume and index < state.phase:
                continue
            last = self._run_phase(index, phase, model, trained, stats, state, optim_state)
            optim_state = None
        replicas = distributed.replicas_identical(model) if self.dist.enabled else None
        metric = f"val_{self.task.metric}"
        summary = {
            "seconds": round(time.perf_counter() - start, 1),
            "world_size": self.dist.world_size,
            "replicas_identical": replicas,
            "task": config.task,
            f"final_{metric}": last.get(metric),
            f"best_{metric}": state.best_metric,
            "best_phase": state.best_phase + 1,
            "best_epoch": state.best_epoch,
            "output": str(output),
        }
        if self.dist.is_main:
            atomic_write(output / "summary.json", json.dumps(summary, indent=2))
            log(
                f"done in {summary['seconds']:.0f}s: final {metric} {summary[f'final_{metric}']:.2f}, "
                f"best {summary[f'best_{metric}']:.2f} (phase {summary['best_phase']}, epoch {summary['best_epoch']}); "
                f"checkpoint {output / 'model.safetensors'}"
            )
        distributed.cleanup()
        return summary

    def _run_phase(self, index, phase: Phase, model, trained, stats, state: RunState, optim_state) -> dict:
        config = self.config
        train = self.loader(self.samples(self.train_base, phase.train_quality), True, stats)
        val = self.loader(self.samples(self.val_base, phase.val_quality), False, stats)
        optim = OptimConfig(config.optimizer, config.lr, config.weight_decay, warmup_epochs=config.warmup_epochs)
        optimizer, scheduler = build_optimizer(model, optim, len(train), phase.epochs)
        first_epoch = 1
        if optim_state is not None and state.phase == index:
            optimizer.load_state_dict(optim_state["optimizer"])
            scheduler.load_state_dict(optim_state["scheduler"])
            torch.set_rng_state(optim_state["torch_rng"])
            first_epoch = state.epoch + 1
        record = {}
        for epoch in range(first_epoch, phase.epochs + 1):
            began = time.perf_counter()
            train.set_epoch(index * 100_000 + epoch)
            fitted = self.task.train_one_epoch(
                trained, train, optimizer, scheduler, self.device,
                description=f"{phase.name} epoch {epoch}/{phase.epochs}", progress=self.progress, total=len(train),
            )
            checked = self.task.evaluate(trained, val, self.device, description="validate", progress=self.progress, total=len(val))
            record = {"phase": index + 1, "phase_name": phase.name, "quality": phase.val_quality, "epoch": epoch}
            record.update({f"train_{key}": value for key, value in fitted.items() if key not in ("images", "seconds")})
            record.update({f"val_{key}": value for key, value in checked.items() if key != "images"})
            record.update(lr=optimizer.param_groups[0]["lr"], seconds=time.perf_counter() - began,
                          skipped_files=train.skipped + val.skipped)
            state.phase, state.epoch = index, epoch
            if self.dist.is_main:
                self._finish_epoch(model, stats, state, record, optimizer, scheduler)
        if self.dist.is_main:
            quality = "orig" if phase.train_quality is None else f"q{phase.train_quality}"
            save_checkpoint(self.output / f"phase{index + 1}-{quality}.safetensors", model, stats=stats,
                            classes=self.train_base.classes, info=self._info(state))
        return record

    def _finish_epoch(self, model, stats, state: RunState, record: dict, optimizer, scheduler) -> None:
        with self.metrics_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        value = record[f"val_{self.task.metric}"]
        improved = self.task.better(value, state.best_metric)
        if improved:
            state.best_metric, state.best_phase, state.best_epoch = value, state.phase, state.epoch
        info = self._info(state)
        classes = self.train_base.classes

        def save(path: Path) -> None:
            save_checkpoint(path, model, stats=stats, classes=classes, info=info)

        optim_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                       "torch_rng": torch.get_rng_state()}
        commit_epoch(self.output, state, save, optim_state)
        save(self.output / "model.safetensors")
        if improved:
            save(self.output / "best.safetensors")
        metric = self.task.metric
        unit = "%" if metric == "acc" else ""
        log(
            f"{record['phase_name']:>6} epoch {record['epoch']:3d}/{self.phases[state.phase].epochs}  "
            f"train loss {record['train_loss']:.3f} {metric} {record[f'train_{metric}']:5.2f}{unit}  "
            f"val loss {record['val_loss']:.3f} {metric} {record[f'val_{metric}']:5.2f}{unit}  {record['seconds']:.1f}s"
        )

    def _info(self, state: RunState) -> dict:
        phase = self.phases[state.phase]
        return {"data": self.config.data, "mode": self.config.mode, "phase": state.phase + 1,
                "epoch": state.epoch, "quality": phase.train_quality, "seed": self.config.seed}

    def _start_outputs(self, resumed: RunState | None) -> None:
        output = self.output
        output.mkdir(parents=True, exist_ok=True)
        resolved = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(self.config).items()}
        resolved["output"] = str(output)
        resolved["resume"] = False
        resolved["curriculum"] = list(self.config.curriculum)
        resolved["aug_quality"] = list(self.config.aug_quality)
        atomic_write(output / "config.yaml", yaml.safe_dump(resolved, sort_keys=True))
        kept = []
        if resumed is not None and self.metrics_path.exists():
            for line in self.metrics_path.read_text().splitlines():
                record = json.loads(line)
                if (record["phase"] - 1, record["epoch"]) <= (resumed.phase, resumed.epoch):
                    kept.append(line)
        atomic_write(self.metrics_path, "".join(line + "\n" for line in kept))


def model_name(model: torch.nn.Module) -> str:
    from cdomain.models import model_config

    return model_config(model)["name"]


def run_training(config: Namespace) -> dict:
    """Run ``cdomain-train`` as configured; returns the summary (also written to summary.json)."""
    output = Path(config.output) if config.output else default_output(config)
    return TrainingRun(config, output).run()


def default_output(config: Namespace) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    suffix = f"fbs{config.fbs}" if config.input == "dct" else config.input
    return Path("runs") / f"{stamp}-{config.model}-{suffix}-{config.mode}"
