"""cdomain-train: train a classifier on JPEG DCT coefficients.

With no flags it trains ``resnet_dct_small`` with FBS n=16 on the embedded ``textures`` dataset
(generated on first use). Every run writes into its output folder::

    config.yaml        the resolved configuration (YAML file, then flags)
    metrics.jsonl      one JSON record per epoch
    model.safetensors  weights + input statistics + model metadata (after every epoch)
    best.safetensors   the epoch with the best validation accuracy
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch
import yaml

from cdomain.atomic import atomic_write
from cdomain.data.dct_transforms import CROP_MULTIPLE
from cdomain.data.embedded import EMBEDDED, embedded_dataset, embedded_root
from cdomain.data.loader import DCTLoader
from cdomain.jpeg.errors import JPEGError
from cdomain.models import create_model, list_models
from cdomain.train.checkpoint import save_checkpoint
from cdomain.train.engine import OPTIMIZERS, OptimConfig, fit

INPUTS = ("dct",)
DEFAULT_DATA = "textures"


class UsageError(Exception):
    """A configuration problem the user can fix; reported without a traceback."""


def setup_args() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdomain-train",
        description="Train a network directly on JPEG DCT coefficients.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML file of options; flags override it")
    data = parser.add_argument_group("data")
    data.add_argument("--input", choices=INPUTS, default="dct", help="what the network reads")
    data.add_argument(
        "--data", default=DEFAULT_DATA,
        help=f"embedded dataset ({', '.join(EMBEDDED)}) or a folder with train/ and val/ ImageFolder trees",
    )
    data.add_argument("--fbs", type=int, default=16, help="frequency band selection: lowest zigzag frequencies kept (1..64)")
    data.add_argument(
        "--crop", type=int, default=None,
        help=f"square crop in pixels (multiple of {CROP_MULTIPLE}); default: whole image for embedded data, 224 for folders",
    )
    data.add_argument("--batch-size", type=int, default=64)
    data.add_argument("--workers", type=int, default=0, help="data loading worker processes")
    data.add_argument("--skip-bad", action="store_true", help="skip unreadable JPEGs and report how many")
    model = parser.add_argument_group("model and optimisation")
    model.add_argument("--model", default="resnet_dct_small", help="registered model name (see --list-models)")
    model.add_argument("--list-models", action="store_true", help="print the models for --input and exit")
    model.add_argument("--epochs", type=int, default=30)
    model.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    model.add_argument("--lr", type=float, default=0.05, help="peak learning rate (cosine schedule)")
    model.add_argument("--weight-decay", type=float, default=5e-4)
    model.add_argument("--warmup-epochs", type=float, default=1.0)
    run = parser.add_argument_group("run")
    run.add_argument("--output", type=Path, default=None, help="output folder (default: runs/<time>-<model>-fbs<n>)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--stats-images", type=int, default=512, help="training images used for channel statistics")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def parse_config(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse flags, with defaults taken from ``--config`` YAML where given."""
    parser = setup_args()
    args = parser.parse_args(argv)
    if args.config is not None:
        try:
            loaded = yaml.safe_load(args.config.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            parser.error(f"cannot read --config {args.config}: {error}")
        if not isinstance(loaded, dict):
            parser.error(f"--config {args.config}: expected a mapping of option names to values")
        known = {action.dest for action in parser._actions}
        options = {key.replace("-", "_"): value for key, value in loaded.items()}
        unknown = sorted(set(options) - known - {"config"})
        if unknown:
            parser.error(f"--config {args.config}: unknown option(s) {', '.join(unknown)}")
        parser.set_defaults(**options)
        args = parser.parse_args(argv)
    if not 1 <= args.fbs <= 64:
        parser.error(f"--fbs must be in 1..64, got {args.fbs}")
    if args.crop is not None and (args.crop < CROP_MULTIPLE or args.crop % CROP_MULTIPLE):
        parser.error(f"--crop must be a positive multiple of {CROP_MULTIPLE}, got {args.crop}")
    for name in ("epochs", "batch_size", "stats_images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.workers < 0:
        parser.error("--workers must be >= 0")
    if args.lr <= 0:
        parser.error("--lr must be > 0")
    return args


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine")
    return device


def models_for_input(kind: str) -> list[str]:
    names = []
    for name in list_models():
        try:
            spec = create_model(name, num_classes=2, **({"fbs": 8} if kind == "dct" else {})).input_spec
        except (TypeError, ValueError):
            continue
        if spec["input"] == kind:
            names.append(name)
    return names


def build_model(args: argparse.Namespace, num_classes: int) -> torch.nn.Module:
    try:
        model = create_model(args.model, num_classes=num_classes, fbs=args.fbs)
    except (KeyError, ValueError) as error:
        raise UsageError(f"--model {args.model}: {error}") from None
    if model.input_spec["input"] != args.input:
        raise UsageError(
            f"--model {args.model} reads {model.input_spec['input']} input, not --input {args.input}; "
            f"models for {args.input}: {', '.join(models_for_input(args.input))}"
        )
    return model


def build_loaders(args: argparse.Namespace, layout: str) -> tuple[DCTLoader, DCTLoader]:
    embedded = args.data in EMBEDDED and not Path(args.data).exists()
    if not embedded:
        root = Path(args.data)
        if not (root / "train").is_dir() or not (root / "val").is_dir():
            raise UsageError(f"--data {root}: expected an embedded dataset name or a folder with train/ and val/ sub-folders")
    if embedded and not embedded_root(args.data).is_dir():
        log(f"generating the embedded dataset {args.data!r} into {embedded_root(args.data)} (once)")
        embedded_dataset(args.data)
    crop = args.crop if args.crop is not None else (None if embedded else 224)
    common = dict(
        batch_size=args.batch_size, fbs=args.fbs, layout=layout, crop=crop,
        seed=args.seed, workers=args.workers, skip_bad=args.skip_bad,
    )
    train = DCTLoader(args.data, split="train", augment=True, drop_last=True, **common)
    val = DCTLoader(args.data, split="val", augment=False, **common)
    if train.classes != val.classes:
        raise UsageError(f"--data {args.data}: train and val have different class folders")
    if len(train) == 0:
        raise UsageError(f"--data {args.data}: fewer training images than one batch ({args.batch_size})")
    return train, val


def default_output(args: argparse.Namespace) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{args.model}-fbs{args.fbs}"


def run(args: argparse.Namespace) -> dict:
    """Train as configured by ``args``; returns the summary that is also printed."""
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    progress = not args.quiet and sys.stderr.isatty()
    output = args.output or default_output(args)
    probe = build_model(args, num_classes=2)  # validates --model/--input before any data work
    train, val = build_loaders(args, probe.input_spec["layout"])
    model = build_model(args, num_classes=train.num_classes)
    log(f"data: {args.data} ({len(train.samples)} train / {len(val.samples)} val images, {train.num_classes} classes)")
    log(f"model: {args.model} on {device}, input {model.input_spec}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    stats = train.compute_stats(args.stats_images)
    train.stats = val.stats = stats

    output.mkdir(parents=True, exist_ok=True)
    resolved = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
    resolved["output"] = str(output)
    atomic_write(output / "config.yaml", yaml.safe_dump(resolved, sort_keys=True))
    metrics_path = output / "metrics.jsonl"
    metrics_path.write_text("")
    best = {"val_acc": -1.0, "epoch": 0}
    info = {"data": args.data, "fbs": args.fbs, "seed": args.seed}

    def on_epoch_end(epoch: int, record: dict) -> None:
        record = {**record, "skipped_files": train.skipped + val.skipped}
        with metrics_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        save_checkpoint(output / "model.safetensors", model, stats=stats, classes=train.classes, info={**info, "epoch": epoch})
        if record["val_acc"] > best["val_acc"]:
            best.update(val_acc=record["val_acc"], epoch=epoch)
            save_checkpoint(output / "best.safetensors", model, stats=stats, classes=train.classes, info={**info, "epoch": epoch})
        log(
            f"epoch {epoch:3d}/{args.epochs}  train loss {record['train_loss']:.3f} acc {record['train_acc']:5.1f}%  "
            f"val loss {record['val_loss']:.3f} acc {record['val_acc']:5.1f}%  {record['seconds']:.1f}s"
        )

    start = time.perf_counter()
    optim = OptimConfig(optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs)
    history = fit(model, train, val, epochs=args.epochs, optim=optim, device=device, progress=progress, on_epoch_end=on_epoch_end)
    summary = {
        "seconds": round(time.perf_counter() - start, 1),
        "final_val_acc": history[-1]["val_acc"],
        "best_val_acc": best["val_acc"],
        "best_epoch": best["epoch"],
        "skipped_files": train.skipped + val.skipped,
        "output": str(output),
        "optim": asdict(optim),
    }
    atomic_write(output / "summary.json", json.dumps(summary, indent=2))
    log(
        f"done in {summary['seconds']:.0f}s: final val acc {summary['final_val_acc']:.1f}%, "
        f"best {summary['best_val_acc']:.1f}% (epoch {summary['best_epoch']}); "
        f"skipped {summary['skipped_files']} bad files; checkpoint {output / 'model.safetensors'}"
    )
    return summary


def log(message: str) -> None:
    print(message, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_config(argv)
    if args.list_models:
        print("\n".join(models_for_input(args.input)))
        return 0
    try:
        run(args)
    except (UsageError, JPEGError, FileNotFoundError) as error:
        print(f"cdomain-train: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cdomain-train: interrupted; the last completed epoch's checkpoint is intact", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
