"""Frozen codec vs joint fine-tuning: cResNet-39 accuracy and real bpp at two codec qualities.

The published comparison (docs/references.md, "Learned latents": MINC-2500 textures, pretrained
bmshj2018 codecs) found joint fine-tuning of encoder and task network far ahead of a frozen
encoder at low quality (q1: 66.26 vs 13.88 top-1). This script repeats the comparison at CPU
scale on the embedded ``textures`` data set (10 classes, 1,200 train / 400 val images, 64x64):

1. per quality, train a bmshj2018-hyperprior codec of the zoo's size (N=128, M=192 for
   q1-5) from scratch, briefly (``--codec-steps`` Adam steps on 64x64 crops, lr
   ``--codec-lr``) -- far from CompressAI's converged weights, which cannot be downloaded here;
2. frozen: encode train and val once (cached latents), train cResNet-39 on them
   (``cdomain.train.run`` with ``TrainConfig(input="latent")``);
3. joint: start from the same codec and a cResNet-39 with the same initial weights (same seed),
   train encoder side and network together on CE + ``--lambda-rate`` * bpp
   (``TrainConfig(input="latent", mode="joint")``: :class:`cdomain.latents.joint.JointLearner`);
4. print validation accuracy and validation bpp (real bitstreams from ``compress()`` and the
   likelihood estimate) for each.

Each arm is a run folder (``OUTPUT/q<Q>/frozen``, ``OUTPUT/q<Q>/joint``, the latter with the
tuned ``codec.safetensors``), replaced when the script is run again; the frozen arm's latent
cache (``OUTPUT/q<Q>/latents``) and the trained codec are reused.

CPU sizing: the 64x64 images give 4x4 latents; the published resize-to-32 / crop-28 would make
every cResNet-39 step about 50x dearer, so latents are used at their own size (``--resize``/
``--crop`` default to none; training still flips). The settings below are the defaults, chosen
before any run and not tuned to the outcome.

    python benchmarks/joint_vs_frozen.py [--qualities 1 4] [--codec-steps 300] [--epochs 3]

Run time with the defaults on 2 shared CPU cores (load 4-5 from other jobs): 57 min wall,
38 min CPU (codecs 8-11 min each, frozen arms 7 min each, joint arms 10-14 min each).
Measured (validation, 400 images, chance 10%):

    | quality | frozen acc | frozen bpp (est.) | joint acc | joint bpp (est.) |
    | 1 | 9.8% | 0.1396 (0.1159) | 12.8% | 0.1622 (0.1360) |
    | 4 | 16.2% | 0.4879 (0.4759) | 12.8% | 0.2531 (0.2293) |

At this scale every arm stays near chance, so the run shows the pipeline working end to end
(real bitstreams before and after joint tuning; joint tuning at lambda_rate 1 halved the q4
rate) but does not reproduce the published gap; that needs converged codecs and far longer
training. Real bpp exceeds the estimate by 0.01-0.03 here: on 64x64 images the two
per-image streams' fixed cost (about 12 bytes) alone is 0.02 bpp.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from cdomain.data.embedded import embedded_dataset
from cdomain.latents.codec_train import CodecTrainConfig, train_codec
from cdomain.latents.codecs import build_codec, load_codec
from cdomain.train import TrainConfig, run


def setup_args() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", default="textures")
    parser.add_argument("--qualities", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--codec-steps", type=int, default=300)
    parser.add_argument("--codec-batch", type=int, default=8)
    parser.add_argument("--codec-lr", type=float, default=1e-3)
    parser.add_argument("--model", default="cresnet39")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate of the network (both arms)")
    parser.add_argument("--lambda-rate", type=float, default=1.0, help="joint: weight of bpp beside the cross-entropy")
    parser.add_argument("--joint-codec-lr", type=float, default=1e-4)
    parser.add_argument("--resize", type=int, default=None)
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("runs/joint_vs_frozen"))
    parser.add_argument("--progress", action="store_true", help="progress bars")
    return parser


def main(argv=None) -> None:
    args = setup_args().parse_args(argv)
    torch.set_num_threads(args.threads)
    embedded_dataset(args.data)
    start = time.perf_counter()
    print(f"joint vs frozen on {args.data}: qualities {args.qualities}, codec {args.codec_steps} steps x "
          f"{args.codec_batch} crops (lr {args.codec_lr}), {args.model} {args.epochs} epochs x batch {args.batch_size} "
          f"(AdamW lr {args.lr}), joint lambda_rate {args.lambda_rate}, codec lr {args.joint_codec_lr}, "
          f"latents resize {args.resize} crop {args.crop}; {args.threads} threads, load {os.getloadavg()[0]:.1f}",
          flush=True)
    # both arms: the same network, seed (hence initial weights), optimiser and latent augmentation
    common = TrainConfig(input="latent", data=args.data, model=args.model, epochs=args.epochs,
                         batch_size=args.batch_size, optimizer="adamw", lr=args.lr, weight_decay=5e-4,
                         warmup_epochs=0.5, latent_resize=args.resize, latent_crop=args.crop, seed=args.seed,
                         threads=args.threads, quiet=not args.progress, overwrite=True)
    rows = []
    for quality in args.qualities:
        out = args.output / f"q{quality}"
        codec_path = out / "codec.safetensors"
        torch.manual_seed(args.seed)
        t0 = time.perf_counter()
        if codec_path.exists():
            codec = load_codec(codec_path, quality=quality)
            codec_note = "reused"
        else:
            codec = build_codec("bmshj2018-hyperprior", quality)
            config = CodecTrainConfig(steps=args.codec_steps, batch_size=args.codec_batch, crop=64, lr=args.codec_lr,
                                      seed=args.seed, checkpoint_every=max(1, args.codec_steps))
            summary = train_codec(codec, args.data, config, checkpoint=codec_path, progress=args.progress)
            codec_note = f"trained, PSNR {summary['psnr']:.1f} dB at {summary['bpp']:.3f} bpp (train crops)"
        codec_seconds = time.perf_counter() - t0
        print(f"q{quality}: codec N={codec.N} M={codec.M} {codec_note} in {codec_seconds:.0f}s", flush=True)

        # frozen: train and val encoded once into the latent cache (val with real bitstreams)
        t0 = time.perf_counter()
        summary = run(common.replace(codec=str(codec_path), cache=str(out / "latents"), output=str(out / "frozen")))
        frozen = {"acc": summary["final_val_acc"], "bpp": summary["final_val_bpp"],
                  "likelihood_bpp": summary["final_val_likelihood_bpp"], "seconds": time.perf_counter() - t0}
        print(f"q{quality} frozen: val acc {frozen['acc']:.1f}% at {frozen['bpp']:.4f} bpp "
              f"(estimate {frozen['likelihood_bpp']:.4f}); {frozen['seconds']:.0f}s", flush=True)

        # joint: same codec file, same initial network; the tuned codec is OUTPUT/q<Q>/joint/codec.safetensors
        t0 = time.perf_counter()
        summary = run(common.replace(mode="joint", codec=str(codec_path), lambda_rate=args.lambda_rate,
                                     codec_lr=args.joint_codec_lr, output=str(out / "joint")))
        joint = {"acc": summary["final_val_acc"], "bpp": summary["final_val_bpp"],
                 "likelihood_bpp": summary["final_val_likelihood_bpp"], "seconds": time.perf_counter() - t0}
        print(f"q{quality} joint:  val acc {joint['acc']:.1f}% at {joint['bpp']:.4f} bpp "
              f"(estimate {joint['likelihood_bpp']:.4f}); {joint['seconds']:.0f}s", flush=True)
        rows.append((quality, frozen, joint))

    print()
    print("| quality | frozen acc | frozen bpp (est.) | joint acc | joint bpp (est.) |")
    print("|---|---|---|---|---|")
    for quality, frozen, joint in rows:
        print(f"| {quality} | {frozen['acc']:.1f}% | {frozen['bpp']:.4f} ({frozen['likelihood_bpp']:.4f}) | "
              f"{joint['acc']:.1f}% | {joint['bpp']:.4f} ({joint['likelihood_bpp']:.4f}) |")
    print(f"total {time.perf_counter() - start:.0f}s on {args.threads} threads")


if __name__ == "__main__":
    main()
