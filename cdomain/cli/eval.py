"""cdomain-eval: evaluate checkpoints at a list of JPEG qualities (a compression-impact sweep).

    cdomain-eval runs/a/model.safetensors runs/b/model.safetensors --qualities 5,10,15,50,75,95

Writes ``sweep.csv``, ``sweep.json`` and ``sweep.png`` (metric vs mean compressed size, one
curve per checkpoint) into ``--output`` and prints a table. Every checkpoint is checked against
the data (task, class names) and the output folder is claimed before any work starts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from cdomain.cli.errors import run_command
from cdomain.errors import ConfigError, RunFolderError

#: The files a sweep writes into its output folder.
SWEEP_FILES = ("sweep.csv", "sweep.json", "sweep.png")


def quality_list(text: str) -> tuple[int, ...]:
    """``"5,10,90"`` as qualities in 1..100 (the flag's type)."""
    try:
        values = tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated qualities, got {text!r}") from None
    if not values or any(not 1 <= q <= 100 for q in values):
        raise argparse.ArgumentTypeError(f"qualities must be in 1..100, got {text!r}")
    return values


def setup_args() -> argparse.ArgumentParser:
    from cdomain.data.quality import METHODS
    from cdomain.evaluate.sweep import DEFAULT_QUALITIES

    parser = argparse.ArgumentParser(
        prog="cdomain-eval",
        description="Evaluate checkpoints on validation images re-encoded at several JPEG qualities.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("checkpoints", nargs="+", type=Path, help="cdomain checkpoints (.safetensors)")
    parser.add_argument("--data", default=None,
                        help="embedded dataset name or folder with train/ and val/ (default: textures, or crowd for counting)")
    parser.add_argument("--qualities", type=quality_list, default=DEFAULT_QUALITIES, help="comma-separated IJG qualities")
    parser.add_argument("--requant", choices=METHODS, default="pixel", help="how validation images are re-encoded")
    parser.add_argument("--crop", type=int, default=None, help="centre crop in pixels (default: as in training)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable image files and report how many")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", type=Path, default=None, help="output folder (default: a new runs/eval-<time>)")
    parser.add_argument("--overwrite", action="store_true", help="replace the sweep files of an earlier --output")
    parser.add_argument("--correct", type=Path, default=None, metavar="AC_CKPT",
                        help="artifact-correction checkpoint (cdomain-train --mode ac|ttac) put in front of every "
                             "checkpoint on compressed images; the original files skip it")
    return parser


def label_checkpoints(paths: Sequence[Path]) -> dict[str, Path]:
    """Short unique names: the run folder's name, or the file path where those collide."""
    names = [path.parent.name or path.stem for path in paths]
    if len(set(names)) < len(names):
        names = [str(path) for path in paths]
    return dict(zip(names, paths))


def claim_output(output: Path | None, overwrite: bool) -> Path:
    """The sweep's output folder, checked and created before any work."""
    from cdomain.train.run_folder import claim_default

    if output is None:
        return claim_default(time.strftime("eval-%Y%m%d-%H%M%S"))
    if output.exists() and not output.is_dir():
        raise RunFolderError(f"--output {output}: exists and is not a folder")
    if output.is_dir() and any(output.iterdir()):
        others = [p.name for p in output.iterdir() if p.name not in SWEEP_FILES]
        if others or not overwrite:
            raise RunFolderError(f"--output {output}: folder is not empty; choose a new folder"
                                 + ("" if others else " or pass --overwrite to replace its sweep files"))
    output.mkdir(parents=True, exist_ok=True)
    return output


def run_sweep(args: argparse.Namespace) -> dict:
    from cdomain.checkpoint import check_fits, load_checkpoint
    from cdomain.data.registry import open_dataset
    from cdomain.evaluate.sweep import SweepPoint, metric_of, sweep, write_results
    from cdomain.train.device import resolve_device

    for name in ("batch_size", "workers"):
        value = getattr(args, name)
        if value < (1 if name == "batch_size" else 0):
            raise ConfigError(f"--{name.replace('_', '-')}", f"must be >= {1 if name == 'batch_size' else 0}, got {value}")
    if args.crop is not None and (args.crop < 16 or args.crop % 16):
        raise ConfigError("--crop", f"must be a positive multiple of 16 pixels, got {args.crop}")
    device = resolve_device(args.device)
    checkpoints = {name: load_checkpoint(path) for name, path in label_checkpoints(args.checkpoints).items()}
    tasks = {checkpoint.header.task for checkpoint in checkpoints.values()}
    if len(tasks) > 1:
        raise ConfigError("checkpoints", "classifiers and counting networks cannot share one sweep")
    task = "counting" if tasks == {"density"} else "classification"
    dataset = open_dataset(args.data or ("crowd" if task == "counting" else "textures"), task)
    for checkpoint in checkpoints.values():
        check_fits(checkpoint, dataset.classes, "density" if task == "counting" else "classification", None,
                   "checkpoint")
    correction = None
    if args.correct is not None:
        from cdomain.train.correction import load_corrector

        correction = load_corrector(args.correct)
        for checkpoint in checkpoints.values():
            if checkpoint.input_spec.input not in ("dct", "rgb"):
                raise ConfigError("--correct", f"{checkpoint.path}: correction feeds dct or rgb networks")
    output = claim_output(args.output, args.overwrite)
    crop = args.crop if args.crop is not None else (None if dataset.embedded else 224)

    def show(point: SweepPoint) -> None:
        quality = "orig" if point.quality is None else f"q{point.quality}"
        unit = "%" if point.metric == "accuracy" else ""
        print(f"{point.checkpoint:>24} {quality:>5}  {point.metric} {point.value:6.2f}{unit}  "
              f"{point.mean_bytes:9.0f} B/image  {point.bits_per_pixel:6.3f} bpp", flush=True)

    points = sweep(checkpoints, dataset.split("val"), args.qualities, method=args.requant, crop=crop,
                   batch_size=args.batch_size, workers=args.workers, device=device, progress=show,
                   target=dataset.target("val"), skip_bad=args.skip_bad, correction=correction)
    written = write_results(points, output)
    print(f"wrote {', '.join(str(path) for path in written.values())}")
    return {"points": points, "written": written, "metric": metric_of(next(iter(checkpoints.values())))}


def main(argv: Sequence[str] | None = None) -> int:
    args = setup_args().parse_args(argv)
    return run_command("cdomain-eval", lambda: run_sweep(args))


if __name__ == "__main__":
    sys.exit(main())
