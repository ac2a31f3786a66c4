"""cdomain-eval: evaluate checkpoints at a list of JPEG qualities (a compression-impact sweep).

    cdomain-eval runs/a/model.safetensors runs/b/model.safetensors --qualities 5,10,15,50,75,95

Writes ``sweep.csv``, ``sweep.json`` and ``sweep.png`` (metric vs mean compressed size, one
curve per checkpoint) into ``--output`` and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from cdomain.cli.train import quality_list
from cdomain.data.quality import METHODS
from cdomain.evaluate.sweep import DEFAULT_QUALITIES, SweepPoint, metric_of, sweep, write_results
from cdomain.jpeg.errors import JPEGError
from cdomain.train.checkpoint import load_checkpoint
from cdomain.train.runner import UsageError, base_samples, crowd_samples, resolve_device


def setup_args() -> argparse.ArgumentParser:
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
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", type=Path, default=None, help="output folder (default: runs/eval-<time>)")
    return parser


def label_checkpoints(paths: Sequence[Path]) -> dict[str, Path]:
    """Short unique names: the run folder's name, or the file path where those collide."""
    names = [path.parent.name or path.stem for path in paths]
    if len(set(names)) < len(names):
        names = [str(path) for path in paths]
    return dict(zip(names, paths))


def main(argv: Sequence[str] | None = None) -> int:
    args = setup_args().parse_args(argv)
    output = args.output or Path("runs") / time.strftime("eval-%Y%m%d-%H%M%S")
    try:
        device = resolve_device(args.device)
        checkpoints = {}
        for name, path in label_checkpoints(args.checkpoints).items():
            try:
                checkpoints[name] = load_checkpoint(path)
            except (FileNotFoundError, ValueError) as error:
                raise UsageError(str(error)) from None
        metrics = {metric_of(checkpoint) for checkpoint in checkpoints.values()}
        if len(metrics) > 1:
            raise UsageError("checkpoints of classifiers and of counting networks cannot share one sweep")
        target = None
        if metrics == {"mae"}:
            args.data = args.data or "crowd"
            _, val, _, target = crowd_samples(args.data)
            embedded = True
        else:
            args.data = args.data or "textures"
            _, val, embedded = base_samples(args)
        crop = args.crop if args.crop is not None else (None if embedded else 224)

        def show(point: SweepPoint) -> None:
            quality = "orig" if point.quality is None else f"q{point.quality}"
            unit = "%" if point.metric == "accuracy" else ""
            print(f"{point.checkpoint:>24} {quality:>5}  {point.metric} {point.value:6.2f}{unit}  "
                  f"{point.mean_bytes:9.0f} B/image  {point.bits_per_pixel:6.3f} bpp", flush=True)

        points = sweep(checkpoints, val, args.qualities, method=args.requant, crop=crop, batch_size=args.batch_size,
                       workers=args.workers, device=device, progress=show, target=target)
        written = write_results(points, output)
    except (UsageError, JPEGError, ValueError) as error:
        print(f"cdomain-eval: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(str(path) for path in written.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
