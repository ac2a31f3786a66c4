"""cdomain-eval: evaluate checkpoints at a list of JPEG qualities (a compression-impact sweep).

    cdomain-eval runs/a/model.safetensors runs/b/model.safetensors --qualities 5,10,15,50,75,95
    cdomain-eval runs/rgb/model.safetensors --codec h264 --crf 23,25,30,40,50   (see cdomain.evaluate.h264)

    cdomain-eval runs/c/model.safetensors --codec latent --codecs codecs/q1.safetensors,codecs/q3.safetensors

``--codec latent`` sweeps learned codecs instead (:mod:`cdomain.evaluate.latent_sweep`): the
validation images are written as bitstream files by each codec (kept in ``OUTPUT/bitstreams``)
and networks on latent input are evaluated on latents read straight from them, against the
real bits per pixel of the files.

``--split test`` evaluates on a crowd dataset's official test split (whole images, one at a
time), the figures a paper reports; the default is the validation split. Counting reports MAE
and the literature's "MSE" (the root of the mean squared count error). Writes ``sweep.csv``,
``sweep.json`` and ``sweep.png`` (metric vs mean compressed size, one curve per checkpoint)
into ``--output`` and prints a table. Every checkpoint is checked against the data (task, class
names) and the output folder is claimed before any work starts.
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
SWEEP_FILES = ("sweep.csv", "sweep.json", "sweep.png", "bitstreams")


def quality_list(text: str) -> tuple[int, ...]:
    """``"5,10,90"`` as qualities in 1..100 (the flag's type)."""
    try:
        values = tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated qualities, got {text!r}") from None
    if not values or any(not 1 <= q <= 100 for q in values):
        raise argparse.ArgumentTypeError(f"qualities must be in 1..100, got {text!r}")
    return values


def codec_list(text: str) -> tuple[Path, ...]:
    """``"a.safetensors,b.pth.tar"`` as codec paths (the flag's type)."""
    return tuple(Path(part.strip()) for part in str(text).split(",") if part.strip())


def setup_args() -> argparse.ArgumentParser:
    from cdomain.data.quality import METHODS
    from cdomain.evaluate.h264 import DEFAULT_CRFS, crf_list
    from cdomain.evaluate.sweep import DEFAULT_QUALITIES
    from cdomain.train.config import CROWD_FORMATS

    parser = argparse.ArgumentParser(
        prog="cdomain-eval",
        description="Evaluate checkpoints on validation images re-encoded at several JPEG qualities.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("checkpoints", nargs="+", type=Path, help="cdomain checkpoints (.safetensors)")
    parser.add_argument("--data", default=None,
                        help="embedded dataset name or folder with train/ and val/ (default: textures; crowd for counting, "
                             "mosaic for segmentation)")
    parser.add_argument("--qualities", type=quality_list, default=DEFAULT_QUALITIES, help="comma-separated IJG qualities")
    parser.add_argument("--requant", choices=METHODS, default="pixel", help="how validation images are re-encoded")
    parser.add_argument("--crop", type=int, default=None, help="centre crop in pixels (default: as in training)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable image files and report how many")
    parser.add_argument("--lenient", action="store_true",
                        help="decode corrupt or truncated JPEG data as libjpeg does instead of refusing the file")
    parser.add_argument("--transcode", action="store_true",
                        help="read CMYK/YCCK, RGB-coded, 12-bit and non-JPEG images through YCbCr JPEG copies "
                             "cached in $CDOMAIN_DATA/transcoded")
    parser.add_argument("--label-map", default=None,
                        help="fine-to-coarse label map file (JSON, CSV or YAML) applied to --data, as in training")
    parser.add_argument("--data-split", type=int, default=None,
                        help="numbered label-file split of MINC-2500-style data (1..5)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--codec", choices=("jpeg", "h264", "latent"), default="jpeg",
                        help="jpeg: re-encode the validation images at --qualities; h264: encode the clip set "
                             "at --crf; latent: bitstreams of each --codecs file")
    parser.add_argument("--crf", type=crf_list, default=DEFAULT_CRFS, help="--codec h264: comma-separated libx264 CRF values")
    parser.add_argument("--codecs", type=codec_list, default=(),
                        help="--codec latent: comma-separated codec files, one per codec quality")
    parser.add_argument("--latent-resize", type=int, default=32, help="--codec latent: as the network was trained")
    parser.add_argument("--latent-crop", type=int, default=28, help="--codec latent: as the network was trained")
    parser.add_argument("--output", type=Path, default=None, help="output folder (default: a new runs/eval-<time>)")
    parser.add_argument("--split", choices=("val", "test"), default="val",
                        help="the split of --data to evaluate on: val, or test (the official test split) for final figures")
    parser.add_argument("--format", default=None, choices=CROWD_FORMATS, help="counting: layout of the --data folder (default: detected)")
    parser.add_argument("--val-fraction", type=float, default=None,
                        help="counting: the --val-fraction the model was trained with (to rebuild the same val split)")
    parser.add_argument("--max-side", type=int, default=None,
                        help="counting: downscale images whose longer side exceeds this many pixels (bounds memory)")
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
    from cdomain.atomic import make_folders
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
    return make_folders(output)


def run_sweep(args: argparse.Namespace) -> dict:
    from cdomain.checkpoint import check_fits, load_checkpoint
    from cdomain.data.registry import open_dataset
    from cdomain.evaluate.sweep import SweepPoint, metric_of, sweep, write_results
    from cdomain.train.device import resolve_device
    from cdomain.jpeg.transcode import default_cache_dir as transcode_dir

    if args.correct is not None and args.codec != "jpeg":
        raise ConfigError("--correct", f"corrects JPEG artifacts; it does not apply to --codec {args.codec}")
    if args.codec == "h264":
        from cdomain.evaluate.h264 import run_h264_sweep

        return run_h264_sweep(args)
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
        raise ConfigError("checkpoints", "networks of different tasks cannot share one sweep")
    model_task = next(iter(tasks))
    task = {"density": "counting", "segmentation": "segmentation"}.get(model_task, "classification")
    from cdomain.data.crowd_formats import CrowdOptions

    data = args.data or {"counting": "crowd", "segmentation": "mosaic"}.get(task, "textures")
    crowd = CrowdOptions(val_fraction=args.val_fraction, max_side=args.max_side)
    dataset = open_dataset(data, task, format=args.format, crowd=crowd, data_split=args.data_split)
    coarse = None
    if args.label_map:  # coarse checkpoints read the mapped data; fine ones are also scored on the coarse classes
        from cdomain.data.layouts import coarse_table, load_label_map

        coarse_classes, table = coarse_table(dataset.classes, load_label_map(args.label_map), args.label_map)
        if all(c.header.classes == coarse_classes for c in checkpoints.values()):
            dataset = open_dataset(data, task, format=args.format, crowd=crowd, data_split=args.data_split,
                                   label_map=args.label_map)
        elif all(c.header.classes == dataset.classes for c in checkpoints.values()):
            coarse = table
        else:
            raise ConfigError("--label-map", "the checkpoints must all be trained on the coarse classes of the map "
                                             "or all on the fine classes of --data")
        print(f"labels: {args.label_map} maps the data to {len(coarse_classes)} coarse classes"
              + ("; fine checkpoints are also scored on them (coarse column)" if coarse else ""), flush=True)
    for checkpoint in checkpoints.values():
        check_fits(checkpoint, dataset.classes, model_task, None, "checkpoint")
    correction = None
    if args.correct is not None:
        from cdomain.train.correction import load_corrector

        correction = load_corrector(args.correct)
        for checkpoint in checkpoints.values():
            if checkpoint.input_spec.input not in ("dct", "rgb"):
                raise ConfigError("--correct", f"{checkpoint.path}: correction feeds dct or rgb networks")
    if args.codec == "latent":
        return run_latent_sweep(args, checkpoints, dataset, device)
    if dataset.format != "jpeg":
        raise ConfigError("--data", f"{dataset.name}: holds learned-codec bitstreams; the JPEG sweep re-encodes "
                                    "JPEG files (--codec latent sweeps codecs on the images)")
    output = claim_output(args.output, args.overwrite)
    crop = args.crop if args.crop is not None else (None if dataset.embedded or dataset.eval_whole else 224)
    batch_size = 1 if dataset.eval_whole and crop is None else args.batch_size  # whole images of varied size

    def show(point: SweepPoint) -> None:
        quality = "orig" if point.quality is None else f"q{point.quality}"
        unit = "%" if point.metric in ("accuracy", "miou") else ""
        extra = f" mse {point.mse:6.2f}" if point.mse is not None else ""
        if point.top5 is not None:
            extra += f"  top-5 {point.top5:6.2f}%"
        if point.coarse_accuracy is not None:
            extra += f"  coarse {point.coarse_accuracy:6.2f}%"
        print(f"{point.checkpoint:>24} {quality:>5}  {point.metric} {point.value:6.2f}{unit}{extra}  "
              f"{point.mean_bytes:9.0f} B/image  {point.bits_per_pixel:6.3f} bpp", flush=True)

    points = sweep(checkpoints, dataset.split(args.split), args.qualities, method=args.requant, crop=crop,
                   batch_size=batch_size, workers=args.workers, device=device, progress=show,
                   target=dataset.target(args.split), skip_bad=args.skip_bad, strict=not args.lenient,
                   transcode=transcode_dir() if args.transcode else None, coarse=coarse,
                   correction=correction)
    written = write_results(points, output)
    print(f"wrote {', '.join(str(path) for path in written.values())}")
    return {"points": points, "written": written, "metric": metric_of(next(iter(checkpoints.values())))}


def run_latent_sweep(args: argparse.Namespace, checkpoints: dict, dataset, device) -> dict:
    """``--codec latent``: every checkpoint on the bitstreams of every ``--codecs`` file."""
    from cdomain.evaluate.latent_sweep import codec_names, latent_sweep
    from cdomain.evaluate.sweep import metric_of, write_results

    if not args.codecs:
        raise ConfigError("--codecs", "--codec latent needs the codec files to sweep (comma-separated)")
    missing = [str(path) for path in args.codecs if not path.is_file()]
    if missing:
        raise ConfigError("--codecs", f"no such codec file: {', '.join(missing)}")
    if dataset.format != "jpeg":
        raise ConfigError("--data", f"{dataset.name}: --codec latent compresses the images itself; give the images")
    if not 1 <= args.latent_crop <= args.latent_resize:
        raise ConfigError("--latent-crop", f"must be in 1..--latent-resize ({args.latent_resize}), got {args.latent_crop}")
    output = claim_output(args.output, args.overwrite)

    def show(point) -> None:
        unit = "%" if point.metric == "accuracy" else ""
        print(f"{point.checkpoint:>24} codec q{point.quality}  {point.metric} {point.value:6.2f}{unit}  "
              f"{point.mean_bytes:9.0f} B/image  {point.bits_per_pixel:6.3f} bpp", flush=True)

    points = latent_sweep(checkpoints, dataset.split("val"), codec_names(list(args.codecs)), output / "bitstreams",
                          batch_size=args.batch_size, workers=args.workers, latent_resize=args.latent_resize,
                          latent_crop=args.latent_crop, device=device, progress=show, skip_bad=args.skip_bad)
    written = write_results(points, output, title="metric vs learned compression")
    print(f"wrote {', '.join(str(path) for path in written.values())}")
    return {"points": points, "written": written, "metric": metric_of(next(iter(checkpoints.values())))}


def main(argv: Sequence[str] | None = None) -> int:
    args = setup_args().parse_args(argv)
    return run_command("cdomain-eval", lambda: run_sweep(args))


if __name__ == "__main__":
    sys.exit(main())
