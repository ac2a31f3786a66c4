"""cdomain-train: train a network on JPEG DCT coefficients (or on decoded pixels, as a baseline).

With no flags it trains ``resnet_dct_small`` with FBS n=16 on the embedded ``textures`` dataset
(generated on first use). Modes: ``standard``, ``npt``, ``cpt`` and ``jpeg-aug`` (see
:mod:`cdomain.train.modes`); ``--quality`` re-encodes the data (cached on disk). The run itself
is :func:`cdomain.train.runner.run_training`; this module parses flags.

Multi-process: ``torchrun --nproc_per_node=N -m cdomain.cli.train ...``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import yaml

from cdomain.data.dct_transforms import CROP_MULTIPLE
from cdomain.data.embedded import EMBEDDED
from cdomain.data.quality import METHODS
from cdomain.jpeg.errors import JPEGError
from cdomain.train.engine import OPTIMIZERS
from cdomain.train.modes import DEFAULT_CURRICULUM, MODES
from cdomain.data.crowd import CROWD
from cdomain.train.runner import TASKS, UsageError, models_for_input, run_training

INPUTS = ("dct", "rgb", "latent")
#: Options that only the learned-latent path reads (see cdomain.latents.train).
LATENT_OPTIONS = ("codec", "cache", "lambda_rate", "lambda_dist", "codec_lr")


def quality_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated qualities, got {text!r}") from None
    if not values or any(not 1 <= q <= 100 for q in values):
        raise argparse.ArgumentTypeError(f"qualities must be in 1..100, got {text!r}")
    return values


def quality_range(text: str) -> tuple[int, int]:
    values = quality_list(text)
    if len(values) != 2 or values[0] > values[1]:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH with LOW <= HIGH, got {text!r}")
    return values


def setup_args() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdomain-train",
        description="Train a network directly on JPEG DCT coefficients.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML file of options; flags override it")
    data = parser.add_argument_group("data")
    data.add_argument("--task", choices=tuple(TASKS), default="classification",
                      help="classification, or crowd counting with density maps")
    data.add_argument("--input", choices=INPUTS, default="dct", help="what the network reads")
    data.add_argument(
        "--data", default=None,
        help=f"classification: embedded dataset ({', '.join(EMBEDDED)}; default textures) or a folder with train/ and "
             f"val/ ImageFolder trees; counting: embedded crowd dataset ({', '.join(CROWD)}; default crowd)",
    )
    data.add_argument("--fbs", type=int, default=16, help="frequency band selection: lowest zigzag frequencies kept (1..64)")
    data.add_argument(
        "--crop", type=int, default=None,
        help=f"square crop in pixels (multiple of {CROP_MULTIPLE}); default: whole image for embedded data, 224 for folders",
    )
    data.add_argument("--batch-size", type=int, default=None, help="default 64; counting 16")
    data.add_argument("--workers", type=int, default=0, help="data loading worker processes")
    data.add_argument("--skip-bad", action="store_true", help="skip unreadable JPEGs and report how many")
    quality = parser.add_argument_group("JPEG quality and training mode")
    quality.add_argument("--mode", choices=MODES + ("joint",), default="standard",
                         help="joint (latent input only): fine-tune the codec's encoder side with the task network")
    quality.add_argument("--quality", type=int, default=None,
                         help="re-encode train and val data at this IJG quality (jpeg-aug: val only)")
    quality.add_argument("--requant", choices=METHODS, default="pixel",
                         help="re-encode through pixels (exact, libjpeg) or requantize in the DCT domain (fast)")
    quality.add_argument("--target-quality", type=int, default=None, help="npt/cpt: the quality to end at")
    quality.add_argument("--curriculum", type=quality_list, default=DEFAULT_CURRICULUM,
                         help="cpt: decreasing qualities, e.g. 75,60,40,30,25,20,15,10,5,1")
    quality.add_argument("--aug-quality", type=quality_range, default=(10, 90),
                         help="jpeg-aug: LOW,HIGH range of random qualities")
    quality.add_argument("--init", type=Path, default=None, help="initialise from this checkpoint (required by npt)")
    latent = parser.add_argument_group("learned latents (--input latent)")
    latent.add_argument("--codec", type=Path, default=None,
                        help="codec file from 'cdomain-prepare codec', or a local CompressAI .pth.tar")
    latent.add_argument("--cache", type=Path, default=None, help="latent cache folder (default: OUTPUT/latents)")
    latent.add_argument("--lambda-rate", type=float, default=0.01, help="joint: weight of the bits per pixel")
    latent.add_argument("--lambda-dist", type=float, default=0.0, help="joint: weight of the reconstruction MSE")
    latent.add_argument("--codec-lr", type=float, default=1e-4, help="joint: learning rate of the encoder side")
    model = parser.add_argument_group("model and optimisation")
    model.add_argument("--model", default=None,
                       help="registered model (default: resnet_dct_small / resnet_rgb_small; counting: csrnet_dct_small / csrnet_small)")
    model.add_argument("--list-models", action="store_true", help="print the models for --input and exit")
    model.add_argument("--epochs", type=int, default=20, help="epochs (per phase in cpt)")
    model.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help="default sgd; counting adamw")
    model.add_argument("--lr", type=float, default=None, help="peak learning rate, cosine schedule (default 0.05; counting 0.01)")
    model.add_argument("--weight-decay", type=float, default=None, help="default 5e-4; counting 1e-4")
    model.add_argument("--warmup-epochs", type=float, default=1.0)
    run = parser.add_argument_group("run")
    run.add_argument("--output", type=Path, default=None, help="output folder (default: runs/<time>-<model>-...)")
    run.add_argument("--resume", action="store_true", help="continue the interrupted run in --output")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--threads", type=int, default=1,
                     help="PyTorch intra-op CPU threads; 0 keeps PyTorch's default (one per core). Small networks "
                          "run fastest on one, and multi-threaded ones slow down sharply on a busy machine")
    run.add_argument("--stats-images", type=int, default=512, help="training images used for channel statistics")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _apply_yaml(parser: argparse.ArgumentParser, path: Path) -> None:
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        parser.error(f"cannot read config {path}: {error}")
    if not isinstance(loaded, dict):
        parser.error(f"config {path}: expected a mapping of option names to values")
    known = {action.dest for action in parser._actions}
    options = {key.replace("-", "_"): value for key, value in loaded.items()}
    unknown = sorted(set(options) - known - {"config"})
    if unknown:
        parser.error(f"config {path}: unknown option(s) {', '.join(unknown)}")
    for key in ("curriculum", "aug_quality"):
        if isinstance(options.get(key), (list, tuple)):
            options[key] = tuple(int(q) for q in options[key])
    parser.set_defaults(**options)


def parse_config(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse flags, with defaults from ``--config`` YAML, or from the run's own config when resuming."""
    parser = setup_args()
    args = parser.parse_args(argv)
    if args.resume:
        if args.output is None:
            parser.error("--resume needs --output, the folder of the run to continue")
        saved = args.output / "config.yaml"
        if not saved.is_file():
            parser.error(f"--resume: {saved} does not exist")
        _apply_yaml(parser, saved)
        args = parser.parse_args(argv)
    elif args.config is not None:
        _apply_yaml(parser, args.config)
        args = parser.parse_args(argv)
    task = TASKS[args.task]
    if args.data is None:
        args.data = task.default_data
    if args.input == "latent":
        if args.task != "classification":
            parser.error("--input latent trains classifiers only")
        if args.mode not in ("standard", "joint"):
            parser.error("--input latent takes --mode standard or joint")
        if args.codec is None and not args.list_models:
            parser.error("--input latent needs --codec (train one with 'cdomain-prepare codec')")
    elif args.mode == "joint":
        parser.error("--mode joint needs --input latent")
    for name, value in task.default_optim.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.model is None:
        args.model = "cresnet39" if args.input == "latent" else task.default_models[args.input]
    if not 1 <= args.fbs <= 64:
        parser.error(f"--fbs must be in 1..64, got {args.fbs}")
    if args.crop is not None and (args.crop < CROP_MULTIPLE or args.crop % CROP_MULTIPLE):
        parser.error(f"--crop must be a positive multiple of {CROP_MULTIPLE}, got {args.crop}")
    for name in ("epochs", "batch_size", "stats_images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("quality", "target_quality"):
        value = getattr(args, name)
        if value is not None and not 1 <= value <= 100:
            parser.error(f"--{name.replace('_', '-')} must be in 1..100, got {value}")
    if args.workers < 0:
        parser.error("--workers must be >= 0")
    if args.threads < 0:
        parser.error("--threads must be >= 0")
    if args.lr <= 0:
        parser.error("--lr must be > 0")
    if args.mode == "npt" and args.init is None and not args.resume:
        parser.error("--mode npt needs --init, a checkpoint trained at the starting quality")
    if args.mode in ("npt", "cpt") and args.target_quality is None and args.quality is None:
        parser.error(f"--mode {args.mode} needs --target-quality")
    return args


def run_latents(args: argparse.Namespace) -> dict:
    """The learned-latent path: cResNet on cached (y_hat, sigma_hat), or joint codec fine-tuning."""
    from cdomain.latents.train import run_latent_training

    options = ("data", "model", "mode", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "warmup_epochs",
               "workers", "seed", "device", "output", "quiet") + LATENT_OPTIONS
    return run_latent_training({name: getattr(args, name) for name in options})


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_config(argv)
    if args.list_models:
        print("\n".join(models_for_input(args.input, args.task)))
        return 0
    try:
        if args.input == "latent":
            run_latents(args)
        else:
            run_training(args)
    except (UsageError, JPEGError, FileNotFoundError, ValueError, ImportError) as error:
        print(f"cdomain-train: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cdomain-train: interrupted; --resume continues from the last completed epoch", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
