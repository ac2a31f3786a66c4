"""The one training driver: :func:`run` carries a :class:`~cdomain.train.config.TrainConfig`
through its phases for every input kind, mode and task.

What it does, in order: claim the output folder (:mod:`cdomain.train.run_folder`), resolve the
data (:mod:`cdomain.data.registry`), build or load the network (and check a checkpoint against
the data), then train phase by phase with :func:`cdomain.train.engine.fit`, committing the
state after every epoch (:mod:`cdomain.train.state`).

The output folder holds ``config.yaml`` (the resolved configuration, accepted by ``--config``
and ``--resume``), ``metrics.jsonl`` (one record per epoch), ``model.safetensors`` (latest),
``best.safetensors`` (best epoch at the target quality: the last phase), one
``phase<i>-q<Q>.safetensors`` (end of phase) and ``phase<i>-q<Q>-best.safetensors`` (the
phase's best epoch) per phase, ``summary.json`` with every phase's figures, and the resumable
state (``state.json``, ``checkpoints/``). Joint fine-tuning adds ``codec.safetensors`` and
``best-codec.safetensors``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from cdomain.atomic import atomic_write, tidy_on_failure
from cdomain.checkpoint import check_fits, load_checkpoint, save_checkpoint
from cdomain.data.registry import open_dataset
from cdomain.errors import ConfigError, RunFolderError
from cdomain.train import distributed, run_folder
from cdomain.train.config import TrainConfig
from cdomain.train.device import resolve_device, set_threads
from cdomain.train.engine import fit, mean_count_baseline
from cdomain.train.inputs import input_kind
from cdomain.train.modes import Phase, plan_phases
from cdomain.train.state import RunState, commit_epoch, confined, load_state, load_training_state, save_training_state
from cdomain.train.engine import get_task

#: Options a resumed run may change; anything else must match the run's config.yaml.
RESUME_OVERRIDES = ("epochs", "workers", "device", "threads", "quiet", "resume", "output", "skip_bad")


def log(message: str) -> None:
    print(message, flush=True)


def run(config: TrainConfig, *, log: Callable[[str], Any] = log) -> dict:
    """Train as configured; returns the summary (also written to ``summary.json``).

    To continue an interrupted run, pass :func:`resume_config`'s result.
    """
    return TrainingRun(config.resolved(), log).execute()


def resume_config(output: str | Path, **changes: Any) -> TrainConfig:
    """The configuration saved in run folder ``output``, set to resume, with ``changes`` applied.

    Only the options in :data:`RESUME_OVERRIDES` may differ from the saved ones (``epochs`` to
    train a finished run further); any other change is a ConfigError naming the option.
    """
    output = Path(output)
    saved_path = output / run_folder.CONFIG_FILE
    if not saved_path.is_file():
        raise RunFolderError(f"--output {output}: no {run_folder.CONFIG_FILE}; not a cdomain run folder to resume")
    saved = TrainConfig.from_yaml(saved_path)
    for name, value in changes.items():
        if name not in RESUME_OVERRIDES and value != getattr(saved, name):
            raise ConfigError(name, f"cannot change when resuming (the run used {getattr(saved, name)!r})")
    return saved.replace(**{**changes, "output": str(output), "resume": True})


class TrainingRun:
    """One configured run: folder, data, network, phases."""

    def __init__(self, config: TrainConfig, log: Callable[[str], Any]) -> None:
        self.config, self.log = config, log
        set_threads(config.threads)
        self.device = resolve_device(config.device)
        self.dist = distributed.setup(self.device)
        self.progress = not config.quiet and sys.stderr.isatty() and self.dist.is_main
        self.task = get_task(config.task)
        self.phases = plan_phases(config.mode, epochs=config.epochs, quality=config.quality,
                                  target_quality=config.target_quality, curriculum=config.curriculum)
        self.kind = input_kind(config)
        self.task = getattr(self.kind, "task", self.task)  # artifact correction ranks epochs by its own loss
        self.bad_files: dict[str, str] = {}
        self.transcoded_files: dict[str, str] = {}  # --transcode: path -> why it was converted

    # ------------------------------------------------------------------ setup

    def claim_output(self) -> Path:
        config = self.config
        if config.output is None:
            stem = run_folder.default_stem(config.model, config.input, config.fbs, config.mode)
            return run_folder.claim_default(stem) if self.dist.is_main else Path("runs") / stem
        return run_folder.prepare_output(Path(config.output), resume=config.resume, overwrite=config.overwrite)

    def readable(self, samples):
        """``samples`` without the files that cannot be read (``--skip-bad`` for latent input)."""
        from cdomain.data.folder import SampleList
        from cdomain.jpeg.errors import JPEGError
        from cdomain.jpeg.reader import read_coefficients

        keep = []
        for index, path in enumerate(samples.paths):
            try:
                read_coefficients(path)
                keep.append(index)
            except JPEGError as error:
                self.bad_files.setdefault(path, error.cause)
        return SampleList(tuple(samples.paths[i] for i in keep), tuple(samples.labels[i] for i in keep),
                          samples.classes)

    def build_model(self) -> tuple[torch.nn.Module, Any]:
        """A fresh network, or the ``--init`` checkpoint's (checked against the data)."""
        from cdomain.models import create_model

        config = self.config
        if config.init is None and hasattr(self.kind, "build_model"):
            return self.kind.build_model(self)
        if config.init is not None:
            checkpoint = load_checkpoint(config.init)
            check_fits(checkpoint, self.dataset.classes, self.task.model_task, config.input, "--init")
            self.log(f"initialised from {config.init} ({checkpoint.info})")
            return checkpoint.model, checkpoint.stats
        kwargs = {**self.kind.model_kwargs(self), **config.model_args}
        if config.task in ("classification", "segmentation"):
            kwargs["num_classes"] = len(self.dataset.classes)
        try:
            model = create_model(config.model, **kwargs)
        except (TypeError, ValueError) as error:
            raise ConfigError("model", f"{config.model}: {error}") from None
        spec = model.input_spec
        if spec.input != config.input or spec.task != self.task.model_task:
            from cdomain.models import list_models_for

            fitting = ", ".join(list_models_for(config.input, self.task.model_task))
            raise ConfigError("model", f"{config.model} is a {spec.task} model on {spec.input} input, not --task "
                                       f"{config.task} --input {config.input}; models for that: {fitting}")
        if config.init_backbone is not None:
            self._load_backbone(model, config.init_backbone)
        return model, None

    def _load_backbone(self, model: torch.nn.Module, path: str) -> None:
        """``--init-backbone``: the model's backbone from a local torchvision-format state dict."""
        from cdomain.models.backbone import read_state_dict

        if not callable(getattr(model, "load_backbone", None)):
            raise ConfigError("init_backbone", f"{self.config.model} has no backbone that --init-backbone can load")
        state = read_state_dict(path)
        try:
            loaded = model.load_backbone(state)
        except ValueError as error:
            raise ConfigError("init_backbone", f"{path}: {error}") from None
        self.log(f"backbone initialised from {path}" + (f" ({loaded} tensors)" if isinstance(loaded, int) else ""))

    # ------------------------------------------------------------------ run

    def execute(self) -> dict:
        with tidy_on_failure():  # a failed run leaves no empty folder it created
            self.output = self.claim_output()
            return self._execute()

    def _execute(self) -> dict:
        config = self.config
        from cdomain.data.crowd_formats import CrowdOptions

        crowd = CrowdOptions(val_fraction=config.val_fraction, density=config.density, sigma=config.sigma,
                             max_side=config.max_side)
        self.dataset = open_dataset(config.data, config.task, log=self.log if self.dist.is_main else None,
                                    format=config.format, crowd=crowd, label_map=config.label_map,
                                    data_split=config.data_split)
        self.kind.setup(self)
        torch.manual_seed(config.seed)
        state, resumed = RunState(best=[None] * len(self.phases)), None
        if config.resume:
            state = load_state(self.output)
            resumed = self._resume_point(state)
            if resumed is None:
                return self._complete_summary()
        model, stats = self.build_model() if resumed is None else resumed[0]
        model.to(self.device)
        spec = model.input_spec
        if stats is None:
            stats = self.kind.compute_stats(self, spec, self.phases[0].train_quality)
        self.model, self.stats = model, stats
        if self.dist.is_main:
            self._start_outputs(state if resumed is not None else None)
            self.log(f"data: {config.data} ({len(self.dataset.split('train'))} train / "
                     f"{len(self.dataset.split('val'))} val images, task {config.task}); mode {config.mode}: "
                     + ", ".join(f"{p.name} ({p.epochs} epochs)" for p in self.phases))
            self.log(f"model: {config.model} on {self.device} x{self.dist.world_size}, input {spec.input} "
                     f"{spec.layout}" + (f" fbs {spec.fbs}" if spec.fbs else "") +
                     f", {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; output {self.output}")
        trained = torch.nn.parallel.DistributedDataParallel(model) if self.dist.enabled else model
        start = time.perf_counter()
        for index, phase in enumerate(self.phases):
            if resumed is not None and index < state.phase:
                continue
            training = resumed[1] if resumed is not None and index == state.phase else None
            self._run_phase(index, phase, trained, state, training)
        replicas = distributed.replicas_identical(model) if self.dist.enabled else None
        summary = self._summary(time.perf_counter() - start, replicas)
        del trained  # DDP's reducer holds the process group: let go of it before the group is torn down
        distributed.cleanup()
        return summary

    def _resume_point(self, state: RunState):
        """``((model, stats), training state)`` to continue from, or None when the run is complete."""
        last = len(self.phases) - 1
        if state.phase > last or len(state.best) != len(self.phases):
            raise ConfigError("epochs", f"the run in {self.output} has other phases than this configuration")
        if state.phase == last and state.epoch >= self.phases[last].epochs:
            return None
        checkpoint = load_checkpoint(confined(self.output, state.files.get("weights", ""), self.output / "state.json"))
        check_fits(checkpoint, self.dataset.classes, self.task.model_task, self.config.input, "--resume")
        training = load_training_state(confined(self.output, state.files.get("optim", ""), self.output / "state.json"))
        if "codec" in state.files:
            from cdomain.latents.codecs import load_codec

            self.kind.codec = load_codec(confined(self.output, state.files["codec"], self.output / "state.json"))
        self.log(f"resuming after phase {state.phase + 1} epoch {state.epoch} in {self.output}")
        return (checkpoint.model, checkpoint.stats), training

    def _run_phase(self, index: int, phase: Phase, trained, state: RunState, training: dict | None) -> None:
        config, spec = self.config, self.model.input_spec
        train = self.kind.loader(self, spec, "train", phase.train_quality, True, self.stats)
        val = self.kind.loader(self, spec, "val", phase.val_quality, False, self.stats)
        if len(train) == 0:
            raise ConfigError("batch_size", f"{config.data}: no training batch (fewer images than one batch?)")
        learner = self.kind.learner(self, self.model, trained, len(train), phase.epochs)
        first_epoch = 1
        if training is not None:
            learner.load_state_dict(training["learner"])
            torch.set_rng_state(training["torch_rng"])
            first_epoch = state.epoch + 1

        def on_epoch_end(epoch: int, record: dict) -> None:
            for bad in (*train.skipped_files, *getattr(val, "skipped_files", ())):
                self.bad_files.setdefault(bad.path, bad.cause)
            for note in (*getattr(train, "transcoded_files", ()), *getattr(val, "transcoded_files", ())):
                self.transcoded_files.setdefault(note.path, note.cause)
            record = {"phase": index + 1, "phase_name": phase.name, "quality": phase.val_quality, **record,
                      **self.kind.epoch_extras(self, val)}
            state.phase, state.epoch = index, epoch
            if self.dist.is_main:
                self._finish_epoch(index, phase, record, learner, state)

        fit(learner, train, val, epochs=phase.epochs, first_epoch=first_epoch, epoch_offset=index * 100_000,
            progress=self.progress, name=phase.name, on_epoch_end=on_epoch_end)
        if self.dist.is_main:
            self._save(self.output / f"phase{index + 1}-{_quality_name(phase)}.safetensors", state)

    def _save(self, path: Path, state: RunState) -> Path:
        phase = self.phases[state.phase]
        info = {"data": self.config.data, "mode": self.config.mode, "phase": state.phase + 1, "epoch": state.epoch,
                "quality": phase.train_quality, "seed": self.config.seed, **getattr(self.kind, "info", {})}
        return save_checkpoint(path, self.model, stats=self.stats, classes=self.dataset.classes, info=info)

    def _finish_epoch(self, index: int, phase: Phase, record: dict, learner, state: RunState) -> None:
        metric = f"val_{self.task.metric}"
        best, _ = state.best_of(index)
        improved = self.task.better(record[metric], best)
        if improved:
            state.best[index] = [record[metric], record["epoch"]]
        last = index == len(self.phases) - 1
        state.complete = last and record["epoch"] >= phase.epochs
        codec = self.kind.codec if self.config.mode == "joint" else None
        self._save(self.output / "model.safetensors", state)
        if codec is not None:
            from cdomain.latents.codecs import save_codec

            save_codec(self.output / "codec.safetensors", codec)
        if improved:
            self._save(self.output / f"phase{index + 1}-{_quality_name(phase)}-best.safetensors", state)
            if last:
                self._save(self.output / "best.safetensors", state)
                if codec is not None:
                    save_codec(self.output / "best-codec.safetensors", codec)
        writers = {"weights": lambda path: self._save(path, state),
                   "optim": lambda path: save_training_state(path, {"learner": learner.state_dict(),
                                                                    "torch_rng": torch.get_rng_state()})}
        if codec is not None:
            writers["codec"] = lambda path: save_codec(path, codec)
        run_folder.append_metrics(self.output / run_folder.METRICS_FILE, record)
        commit_epoch(self.output, state, writers)
        unit = self.task.unit
        name = self.task.metric
        self.log(f"{phase.name:>6} epoch {record['epoch']:3d}/{phase.epochs}  train loss {record['train_loss']:.3f} "
                 f"{name} {record[f'train_{name}']:5.2f}{unit}  val loss {record['val_loss']:.3f} "
                 f"{name} {record[metric]:5.2f}{unit}  {record['seconds']:.1f}s")

    def _start_outputs(self, resumed: RunState | None) -> None:
        atomic_write(self.output / run_folder.CONFIG_FILE,
                     self.config.replace(output=str(self.output), resume=False, overwrite=False).to_yaml())
        path = self.output / run_folder.METRICS_FILE
        kept = []
        if resumed is not None:
            kept = [r for r in run_folder.read_metrics(path)
                    if (r.get("phase", 1) - 1, r.get("epoch", 0)) <= (resumed.phase, resumed.epoch)]
        run_folder.rewrite_metrics(path, kept)

    # ------------------------------------------------------------------ summary

    def _summary(self, seconds: float, replicas: bool | None) -> dict:
        summary = self._figures()
        summary.update(seconds=round(seconds, 1), world_size=self.dist.world_size, replicas_identical=replicas)
        if self.dist.is_main:
            atomic_write(self.output / run_folder.SUMMARY_FILE, json.dumps(summary, indent=2))
            metric = f"val_{self.task.metric}"
            skipped = f"; skipped {len(self.bad_files)} unreadable file(s)" if self.bad_files else ""
            if self.transcoded_files:
                skipped += f"; transcoded {len(self.transcoded_files)} file(s) to YCbCr JPEG"
            self.log(f"done in {seconds:.0f}s: final {metric} {summary[f'final_{metric}']:.2f}, best "
                     f"{summary[f'best_{metric}']:.2f} (epoch {summary['best_epoch']} of the last phase){skipped}; "
                     f"checkpoint {self.output / 'model.safetensors'}")
        return summary

    def _figures(self) -> dict:
        """Per-phase figures from ``metrics.jsonl``; the run's final and best are the last phase's."""
        metric = f"val_{self.task.metric}"
        records = run_folder.read_metrics(self.output / run_folder.METRICS_FILE)
        phases = []
        for index, phase in enumerate(self.phases):
            own = [r for r in records if r.get("phase") == index + 1]
            best = None
            for record in own:
                if best is None or self.task.better(record[metric], best[metric]):
                    best = record
            phases.append({"phase": index + 1, "name": phase.name, "quality": phase.val_quality,
                           "epochs": len(own), f"final_{metric}": own[-1][metric] if own else None,
                           f"best_{metric}": best[metric] if best else None,
                           "best_epoch": best["epoch"] if best else None})
        last = phases[-1]
        summary = {"task": self.config.task, "input": self.config.input, "mode": self.config.mode,
                   "model": self.config.model, "output": str(self.output), "phases": phases,
                   f"final_{metric}": last[f"final_{metric}"], f"best_{metric}": last[f"best_{metric}"],
                   "best_epoch": last["best_epoch"], "skipped_files": len(self.bad_files),
                   "skipped": [{"path": path, "cause": cause} for path, cause in sorted(self.bad_files.items())],
                   "transcoded_files": len(self.transcoded_files),
                   "transcoded": [{"path": path, "cause": cause}
                                  for path, cause in sorted(self.transcoded_files.items())]}
        if self.config.task == "counting":  # the trivial counter to beat: always the mean training count
            counts = {split: [target.count(i) for i in range(len(target))]
                      for split in ("train", "val") for target in [self.dataset.target(split)]}
            summary["mean_count_baseline"] = mean_count_baseline(counts["train"], counts["val"])
        if records and "val_bpp" in records[-1]:
            summary["final_val_bpp"] = records[-1]["val_bpp"]
            summary["final_val_likelihood_bpp"] = records[-1].get("val_likelihood_bpp")
        return summary

    def _complete_summary(self) -> dict:
        epochs = self.phases[-1].epochs
        self.log(f"{self.output}: the run is complete ({epochs} epochs in its last phase); nothing to resume. "
                 f"Raise --epochs to train it further.")
        return self._figures()


def _quality_name(phase: Phase) -> str:
    return "orig" if phase.train_quality is None else f"q{phase.train_quality}"
