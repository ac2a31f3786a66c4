"""cdomain-prepare: train a learned codec, or encode a data set into a latent cache.

::

    cdomain-prepare codec   --data textures --quality 3 [--steps 2000] [--output codec.safetensors]
    cdomain-prepare latents --codec codec.safetensors --data textures --output latents/
    cdomain-prepare resize  SRC OUT [--size 256] [--quality keep] [--workers 2]

``codec`` trains a CompressAI hyperprior codec (``bmshj2018-hyperprior`` by default) with the
rate-distortion loss and CompressAI's lambda for the quality, writing an atomic checkpoint
every ``--checkpoint-every`` steps, then measures real and estimated bpp and PSNR on the
validation images. No weights are downloaded; ``--codec`` elsewhere also accepts CompressAI's
published ``.pth.tar`` files when you have them locally.

``compress`` writes every image as a learned-codec bitstream file (:mod:`cdomain.cli.compress`).

``latents`` writes ``(y_hat, sigma_hat)`` of every image into safetensors shards with an
``index.json`` per split (``OUTPUT/train``, ``OUTPUT/val``); an interrupted run continues where
it stopped when rerun with the same arguments.

``resize`` scales every image of a tree to a shortest side of ``--size`` pixels and writes JPEGs
mirroring the tree (:mod:`cdomain.data.resize`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from cdomain.cli.errors import run_command
from cdomain.data.embedded import EMBEDDED
from cdomain.errors import ConfigError


def setup_args() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdomain-prepare",
        description="Train a learned image codec or encode a data set into latents.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    codec = commands.add_parser("codec", help="train a CompressAI hyperprior codec (rate-distortion)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    codec.add_argument("--data", default="textures", help=f"embedded dataset ({', '.join(EMBEDDED)}) or an image folder")
    codec.add_argument("--quality", type=int, default=3, help="CompressAI quality 1..8 (sets N, M and lambda)")
    codec.add_argument("--architecture", default="bmshj2018-hyperprior", help="bmshj2018-hyperprior or mbt2018-mean")
    codec.add_argument("--channels", type=int, nargs=2, metavar=("N", "M"), default=None,
                       help="override the zoo's channel counts (small codecs for quick experiments)")
    codec.add_argument("--steps", type=int, default=2000)
    codec.add_argument("--batch-size", type=int, default=16)
    codec.add_argument("--crop", type=int, default=64, help="square training crop in pixels")
    codec.add_argument("--lr", type=float, default=1e-4)
    codec.add_argument("--aux-lr", type=float, default=1e-3)
    codec.add_argument("--lmbda", type=float, default=None, help="rate-distortion lambda (default: CompressAI's for --quality)")
    codec.add_argument("--checkpoint-every", type=int, default=500)
    codec.add_argument("--eval-images", type=int, default=64, help="validation images for the final bpp/PSNR")
    codec.add_argument("--output", type=Path, default=None,
                       help="codec file (default: codecs/<architecture>-q<Q>.safetensors); an interrupted run "
                            "continues from its last checkpoint when rerun with the same --output")
    codec.add_argument("--overwrite", action="store_true", help="train again into an --output that earlier training wrote")
    codec.add_argument("--workers", type=int, default=0)
    codec.add_argument("--seed", type=int, default=0)
    codec.add_argument("--device", default="cpu")
    codec.add_argument("--quiet", action="store_true", help="no progress bars")

    latents = commands.add_parser("latents", help="encode a data set into (y_hat, sigma_hat) shards",
                                  formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    latents.add_argument("--codec", type=Path, required=True, help="codec file (.safetensors from 'codec', or CompressAI .pth.tar)")
    latents.add_argument("--data", default="textures", help="embedded dataset name or an image folder")
    latents.add_argument("--output", type=Path, required=True, help="cache folder (one sub-folder per split)")
    latents.add_argument("--splits", default=None, help="comma-separated splits (default: train,val where present)")
    latents.add_argument("--shard-size", type=int, default=256, help="images per shard")
    latents.add_argument("--batch-size", type=int, default=16)
    latents.add_argument("--no-bitstreams", action="store_true", help="skip compress(): no real bpp, faster")
    latents.add_argument("--overwrite", action="store_true", help="replace a cache made with another codec or data")
    latents.add_argument("--quiet", action="store_true", help="no progress bars")

    from cdomain.cli.compress import add_compress_parser  # bitstream files, one per image

    add_compress_parser(commands)

    resize = commands.add_parser("resize", help="resize an image tree into JPEGs (shortest side to --size)",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    resize.add_argument("source", type=Path, help="image folder (any nesting, e.g. an ImageNet train/ and val/ tree)")
    resize.add_argument("output", type=Path,
                        help="new folder, mirroring the source tree; rerun to continue after a kill")
    resize.add_argument("--size", type=int, default=256, help="pixels of the shortest side (--longest: longest side)")
    resize.add_argument("--longest", action="store_true", help="scale the longest side to --size instead")
    resize.add_argument("--quality", default="keep",
                        help="IJG quality 1..100, or keep (estimated from each source's tables)")
    resize.add_argument("--subsampling", default="keep", help="chroma subsampling: keep (the source's) or 420")
    resize.add_argument("--workers", type=int, default=1, help="worker processes")
    resize.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def log(message: str) -> None:
    print(message, flush=True)


def resolve_data(data: str, splits: str | None = None) -> dict:
    """The sample list of each split of ``data`` (``train``/``val``, or ``data`` for a plain folder),
    or of the comma-separated ``splits`` only (``--splits``; ConfigError naming unknown ones)."""
    from cdomain.data.registry import open_dataset

    found = open_dataset(data, "classification", require_splits=False, log=log).splits
    if not splits:
        return found
    wanted = [part.strip() for part in splits.split(",") if part.strip()]
    unknown = [name for name in wanted if name not in found]
    if unknown:
        raise ConfigError("--splits", f"{', '.join(unknown)} not in {data} (it has {', '.join(found)})")
    return {name: found[name] for name in wanted}


def codec_resume_point(output: Path, steps: int, overwrite: bool) -> bool:
    """Whether to resume the codec training saved at ``output``; refuses to replace other files."""
    from cdomain.latents.codec_train import saved_step, state_path
    from cdomain.errors import RunFolderError

    if output.exists() and not output.is_file():
        raise RunFolderError(f"--output {output}: exists and is not a file")
    if not output.exists() or overwrite:
        if overwrite and output.exists() and not state_path(output).is_file():
            raise RunFolderError(f"--output {output}: --overwrite replaces codec training that cdomain-prepare "
                                 "wrote, and this file has no training state beside it; choose another --output")
        return False
    step = saved_step(output)
    if step is None:
        raise RunFolderError(f"--output {output}: exists and holds no codec training to continue; "
                             "choose another --output")
    if step >= steps:
        raise RunFolderError(f"--output {output}: training is complete ({step} steps); raise --steps to continue it "
                             "or pass --overwrite to train it again")
    return True


def run_codec(args: argparse.Namespace) -> dict:
    from cdomain.latents.codec_train import CodecTrainConfig, psnr, saved_step, train_codec
    from cdomain.latents.codecs import ARCHITECTURES, build_codec, load_codec
    from cdomain.latents.encode import compress, decompress, encode
    from cdomain.latents.images import load_rgb

    if args.architecture not in ARCHITECTURES:
        raise ConfigError("--architecture", f"must be one of {', '.join(ARCHITECTURES)}")
    if not 1 <= args.quality <= 8:
        raise ConfigError("--quality", f"must be in 1..8, got {args.quality}")
    for name in ("steps", "batch_size", "checkpoint_every"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}", f"must be >= 1, got {getattr(args, name)}")
    if args.crop < 64 or args.crop % 64:
        raise ConfigError("--crop", f"must be a positive multiple of 64 (the codec's stride), got {args.crop}")
    splits = resolve_data(args.data)
    torch.manual_seed(args.seed)
    n, m = args.channels or (None, None)
    output = args.output or Path("codecs") / f"{args.architecture}-q{args.quality}.safetensors"
    resume = codec_resume_point(output, args.steps, args.overwrite)
    model = load_codec(output) if resume else build_codec(args.architecture, args.quality, N=n, M=m)
    config = CodecTrainConfig(steps=args.steps, batch_size=args.batch_size, crop=args.crop, lr=args.lr,
                              aux_lr=args.aux_lr, lmbda=args.lmbda, seed=args.seed, workers=args.workers,
                              checkpoint_every=args.checkpoint_every)
    progress = not args.quiet and sys.stderr.isatty()
    if resume:
        log(f"resuming codec training in {output} at step {saved_step(output)} of {args.steps}")
    log(f"codec: {args.architecture} quality {args.quality} (N={model.N}, M={model.M}), {args.steps} steps of "
        f"{args.batch_size}x{args.crop}x{args.crop} crops from {args.data}, checkpoint {output}")
    names = list(splits)
    summary = train_codec(model, splits[names[0]], config, checkpoint=output, device=args.device, progress=progress,
                          resume=resume)
    model.cpu()
    eval_split = "val" if "val" in splits else names[-1]
    samples = splits[eval_split]
    count = min(args.eval_images, len(samples))
    bits = estimate = pixels = squared = 0.0
    for path in samples.paths[:count]:
        image = load_rgb(path)[None]
        compressed = compress(model, image)
        bits += float(compressed.bits.sum())
        estimate += float(encode(model, image).likelihood_bits.sum())
        squared += float(torch.nn.functional.mse_loss(decompress(model, compressed), image)) * image[0, 0].numel()
        pixels += image[0, 0].numel()
    summary.update({
        "eval_split": eval_split,
        "eval_images": count,
        "eval_bpp": bits / pixels if pixels else None,
        "eval_likelihood_bpp": estimate / pixels if pixels else None,
        "eval_psnr": psnr(squared / pixels) if pixels else None,
        "N": int(model.N),
        "M": int(model.M),
    })
    log(f"done in {summary['seconds']:.0f}s: train loss {summary['loss']:.3f} (bpp {summary['bpp']:.3f}, "
        f"PSNR {summary['psnr']:.1f} dB); on {count} {eval_split or ''} images: real {summary['eval_bpp']:.3f} bpp "
        f"(estimate {summary['eval_likelihood_bpp']:.3f}), PSNR {summary['eval_psnr']:.1f} dB; codec {output}")
    return summary


def run_latents(args: argparse.Namespace) -> dict:
    from cdomain.latents.cache import write_latents
    from cdomain.latents.codecs import load_codec

    for name in ("shard_size", "batch_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}", f"must be >= 1, got {getattr(args, name)}")
    splits = resolve_data(args.data, args.splits)
    model = load_codec(args.codec)
    log(f"codec {args.codec}: {model.cdomain_config['architecture']} N={model.N} M={model.M}")
    progress = not args.quiet and sys.stderr.isatty()
    start = time.perf_counter()
    results = {}
    for split, samples in splits.items():
        directory = args.output / split if split != "data" else args.output
        index = write_latents(model, samples, directory, split=split, shard_size=args.shard_size,
                              batch_size=args.batch_size, bitstreams=not args.no_bitstreams,
                              codec_path=str(args.codec), progress=progress, overwrite=args.overwrite)
        bpp = f"{index['bpp']:.4f}" if index["bpp"] is not None else "not measured"
        log(f"{split}: {index['num_samples']} images in {len(index['shards'])} shards at {directory}; "
            f"real bpp {bpp}, estimated {index['likelihood_bpp']:.4f}")
        results[split] = {key: index[key] for key in ("num_samples", "bpp", "likelihood_bpp")}
    summary = {"seconds": round(time.perf_counter() - start, 1), "output": str(args.output), "splits": results}
    log(f"done in {summary['seconds']:.0f}s: {json.dumps(results)}")
    return summary


def run_resize(args: argparse.Namespace) -> dict:
    from cdomain.data.resize import ResizeSettings, resize_tree

    quality = args.quality
    if quality != "keep":
        try:
            quality = int(quality)
        except ValueError:
            raise ConfigError("--quality", f"must be keep or an IJG quality in 1..100, got {args.quality!r}") from None
    settings = ResizeSettings(size=args.size, longest=args.longest, quality=quality, subsampling=args.subsampling)
    summary = resize_tree(args.source, args.output, settings, workers=args.workers,
                          progress=not args.quiet and sys.stderr.isatty())
    log(summary.line())
    for relative, cause in list(summary.skipped.items())[:20]:
        log(f"  skipped {relative}: {cause}")
    if len(summary.skipped) > 20:
        log(f"  ... and {len(summary.skipped) - 20} more (all listed in {args.output}/.cdomain-resize.json)")
    return {"summary": summary}


def main(argv: Sequence[str] | None = None) -> int:
    args = setup_args().parse_args(argv)
    if args.command == "resize":
        return run_command("cdomain-prepare", lambda: run_resize(args),
                           interrupted="; finished files are intact, rerun the same command to continue")
    action = run_codec if args.command == "codec" else run_latents
    if args.command == "compress":
        from cdomain.cli.compress import run_compress as action
    return run_command("cdomain-prepare", lambda: action(args),
                       interrupted="; finished checkpoints and shards are intact, rerun to continue")


if __name__ == "__main__":
    sys.exit(main())
