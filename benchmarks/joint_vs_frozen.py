"""Frozen codec vs joint fine-tuning: a latent classifier's accuracy against real bpp, compared at equal bpp.

The published comparison (docs/references.md, "Learned latents": MINC-2500 textures, pretrained
bmshj2018 codecs, cResNet-39) found joint fine-tuning of encoder and task network far ahead of a
frozen encoder at low quality (q1: 66.26 vs 13.88 top-1). This script repeats the comparison at
CPU scale on the embedded ``textures-256`` set (10 classes, 400 train / 200 val images of
256x256; ``--quick``: ``textures-256-tiny``, 30 / 20 images):

1. per quality, train a bmshj2018-hyperprior codec of the zoo's size (N=128, M=192 for
   q1-5) from scratch with CompressAI's rate-distortion loss (``--codec-steps`` Adam steps on
   ``--codec-batch`` crops of ``--codec-crop`` px, lr ``--codec-lr``) -- far from CompressAI's
   converged weights, which cannot be downloaded here. The codec is kept in
   ``OUTPUT/q<Q>/codec.safetensors`` with its training state: a rerun reuses it, and a rerun
   with more ``--codec-steps`` continues its training from where it stopped;
2. encode train and val once into a latent cache (``OUTPUT/q<Q>/latents``: 16x16 latents for
   256 px, val with real bitstreams) and fit a linear probe: a logistic regression on the
   per-channel mean and standard deviation of ``y_hat`` and of ``sigma_hat``, printed beside
   chance, to show whether the codec's latents carry the classes at all before any network is
   trained on them (``--probe-only`` stops here);
3. frozen: train the task network on the cached latents resized to 32x32 with a random 28x28
   crop, as published (``TrainConfig(input="latent")``);
4. joint: start from the same codec and a task network with the same initial weights (same
   seed), train encoder side and network together on CE + ``--lambda-rate`` * bpp, for the same
   epochs with the same optimiser and latent augmentation (``TrainConfig(input="latent",
   mode="joint")``: :class:`cdomain.latents.joint.JointLearner`);
5. print validation accuracy and validation bpp (real bitstreams from ``compress()`` and the
   likelihood estimate) for each, and the accuracy at equal bpp: the frozen arms' accuracy
   interpolated (linearly in log bpp) at each joint arm's bpp, where it lies between two frozen
   points.

Each arm is a run folder (``OUTPUT/q<Q>/frozen``, ``OUTPUT/q<Q>/joint``, the latter with the
tuned ``codec.safetensors``), replaced when the script is run again.

    python benchmarks/joint_vs_frozen.py [--quick] [--qualities 1 4] [--model cresnet39] [--epochs 3]

The defaults below were chosen before any accuracy was measured and not tuned to the outcome
(the epochs went from 5 to 3 for time, after the first codec had trained and before either arm
had run). They are sized to finish in about an hour on 2 shared CPU cores:

- the task network is ``cresnet_small`` (width 32; about 0.13 GMACs on a 28x28 crop, 25 times
  fewer than cResNet-39's 3.3), because cResNet-39 trained at 0.1-0.5 image/s there, which put
  the four arms at many hours; ``--model cresnet39`` runs the published network;
- 3 epochs of batch 16 (75 steps) for both arms: the joint arm runs the codec's analysis side
  forward and backward on every 256 px image (0.3 s an image on 2 cores, most of the joint
  arm's time; 100-250 s an epoch with validation in the README's run), while the frozen arm
  reads cached latents (about 4 s an epoch);
- the codecs train for 2000 steps of 8 crops of 64 px (4 minutes each on 2 idle cores, 10-13.5
  on the shared ones): small crops make steps cheap (a step on 64 px crops costs a quarter of
  one on 128 px crops), and 150 such steps already reconstructed better (PSNR 14.3 dB) than 300
  steps on 128 px crops (13.7 dB), whose latents gave a probe on their per-channel statistics of
  15.5% only;
- the probe reads the scales ``sigma_hat`` beside ``y_hat``: the hyperprior's scales describe how
  much each channel varies where, which is texture information, and the probe stays linear.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch

from cdomain.cli.errors import positive_int, run_command
from cdomain.data.embedded import embedded_dataset
from cdomain.latents.cache import LatentCache, write_latents
from cdomain.latents.codec_train import CodecTrainConfig, saved_step, train_codec
from cdomain.latents.codecs import build_codec, load_codec
from cdomain.train import TrainConfig, run


def setup_args() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", default="textures-256")
    parser.add_argument("--qualities", type=int, nargs="+", default=[1, 4], choices=range(1, 9), metavar="1..8")
    parser.add_argument("--codec-steps", type=positive_int, default=2000)
    parser.add_argument("--codec-batch", type=positive_int, default=8)
    parser.add_argument("--codec-lr", type=float, default=1e-3)
    parser.add_argument("--codec-crop", type=int, default=64, help="square codec training crops (pixels)")
    parser.add_argument("--model", default="cresnet_small",
                        help="task network of both arms (published: cresnet39, about 25 times the compute)")
    parser.add_argument("--epochs", type=positive_int, default=3)
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate of the network (both arms)")
    parser.add_argument("--lambda-rate", type=float, default=1.0, help="joint: weight of bpp beside the cross-entropy")
    parser.add_argument("--joint-codec-lr", type=float, default=1e-4)
    parser.add_argument("--resize", type=int, default=32, help="latent side after resizing (published: 32)")
    parser.add_argument("--crop", type=int, default=28, help="latent crop (published: 28)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("runs/joint_vs_frozen"))
    parser.add_argument("--progress", action="store_true", help="progress bars")
    parser.add_argument("--probe-only", action="store_true",
                        help="train the codecs and fit the linear probe on their latents; no network arms")
    parser.add_argument("--quick", action="store_true",
                        help="textures-256-tiny, codecs of 20 steps x 2 crops of 64 px, 1 epoch of batch 8: "
                             "checks the pipeline, not the comparison")
    return parser


def probe_accuracy(train_dir: Path, val_dir: Path, steps: int = 200) -> float:
    """Validation accuracy (%) of a logistic regression on the per-channel mean and standard
    deviation of the latents ``y_hat`` and their scales ``sigma_hat`` (4M features)."""

    def features(directory: Path) -> tuple[torch.Tensor, torch.Tensor]:
        cache = LatentCache(directory)
        rows, labels = [], []
        for index in range(len(cache)):
            y_hat, sigma_hat, label = cache[index]
            y, sigma = y_hat.float().flatten(1), sigma_hat.float().flatten(1)
            rows.append(torch.cat([y.mean(1), y.std(1), sigma.mean(1), sigma.std(1)]))
            labels.append(int(label))
        return torch.stack(rows), torch.tensor(labels)

    x_train, y_train = features(train_dir)
    x_val, y_val = features(val_dir)
    mean, std = x_train.mean(0), x_train.std(0).clamp(min=1e-6)
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    classes = int(max(y_train.max(), y_val.max())) + 1
    generator = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(x_train.shape[1], classes)
    with torch.no_grad():
        linear.weight.normal_(0, 0.01, generator=generator)
        linear.bias.zero_()
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(x_train), y_train) + 1e-3 * linear.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return 100.0 * float((linear(x_val).argmax(1) == y_val).float().mean())


def at_bpp(points: list[tuple[float, float]], bpp: float) -> float | None:
    """Accuracy of a curve of ``(bpp, acc)`` points at ``bpp``, linear in log bpp; None outside it."""
    points = sorted(points)
    for (b0, a0), (b1, a1) in zip(points, points[1:]):
        if b0 <= bpp <= b1:
            t = 0.0 if b1 == b0 else (math.log(bpp) - math.log(b0)) / (math.log(b1) - math.log(b0))
            return a0 + t * (a1 - a0)
    return None


def main(argv=None) -> list:
    args = setup_args().parse_args(argv)
    if args.quick:
        args.data, args.codec_steps, args.codec_batch, args.codec_crop = "textures-256-tiny", 20, 2, 64
        args.epochs, args.batch_size = 1, 8
    torch.set_num_threads(args.threads)
    embedded_dataset(args.data)
    start = time.perf_counter()
    print(f"joint vs frozen on {args.data}: qualities {args.qualities}, codec {args.codec_steps} steps x "
          f"{args.codec_batch} crops of {args.codec_crop} px (lr {args.codec_lr}), {args.model} {args.epochs} epochs x batch {args.batch_size} "
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
        codec, codec_note, trained = prepare_codec(codec_path, quality, args)
        print(f"q{quality}: codec N={codec.N} M={codec.M} {codec_note} in {time.perf_counter() - t0:.0f}s", flush=True)

        # train and val encoded once into the latent cache (val with real bitstreams), which the
        # probe and the frozen arm read; a codec trained in this call replaces an older cache
        t0 = time.perf_counter()
        for split in ("train", "val"):
            write_latents(codec, args.data, out / "latents" / split, split=split, bitstreams=split == "val",
                          codec_path=str(codec_path), progress=args.progress, overwrite=trained)
        probe = probe_accuracy(out / "latents" / "train", out / "latents" / "val")
        chance = 100 / len(codec_classes(out))
        print(f"q{quality} linear probe on the frozen latents: {probe:.1f}% (chance {chance:.1f}%); "
              f"latents and probe {time.perf_counter() - t0:.0f}s", flush=True)
        if args.probe_only:
            rows.append((quality, {"probe": probe}, None))
            continue

        # frozen: the network on the cached latents
        t0 = time.perf_counter()
        summary = run(common.replace(codec=str(codec_path), cache=str(out / "latents"), output=str(out / "frozen")))
        frozen = {"acc": summary["final_val_acc"], "bpp": summary["final_val_bpp"], "probe": probe,
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

    if args.probe_only:
        print(f"total {time.perf_counter() - start:.0f}s on {args.threads} threads, load {os.getloadavg()[0]:.1f}")
        return rows
    print()
    frozen_curve = [(frozen["bpp"], frozen["acc"]) for _, frozen, _ in rows]
    print("| quality | probe acc | frozen acc | frozen bpp (est.) | joint acc | joint bpp (est.) | "
          "frozen acc at the joint bpp |")
    print("|---|---|---|---|---|---|---|")
    for quality, frozen, joint in rows:
        equal = at_bpp(frozen_curve, joint["bpp"])
        shown = "outside the frozen bpp range" if equal is None else f"{equal:.1f}%"
        print(f"| {quality} | {frozen['probe']:.1f}% | {frozen['acc']:.1f}% | {frozen['bpp']:.4f} "
              f"({frozen['likelihood_bpp']:.4f}) | {joint['acc']:.1f}% | {joint['bpp']:.4f} "
              f"({joint['likelihood_bpp']:.4f}) | {shown} |")
    print(f"total {time.perf_counter() - start:.0f}s on {args.threads} threads, load {os.getloadavg()[0]:.1f}")
    return rows


def prepare_codec(codec_path: Path, quality: int, args) -> tuple[torch.nn.Module, str, bool]:
    """The codec of ``quality``: reused from ``codec_path`` when trained for ``--codec-steps``
    already, continued from its saved training state when trained for fewer, trained from scratch
    when there is none. Returns the codec, a note for the log, and whether it was trained now."""
    config = CodecTrainConfig(steps=args.codec_steps, batch_size=args.codec_batch, crop=args.codec_crop,
                              lr=args.codec_lr, seed=args.seed, checkpoint_every=max(1, args.codec_steps))
    done = saved_step(codec_path) if codec_path.exists() else None
    if codec_path.exists() and (done is None or done >= args.codec_steps):
        return load_codec(codec_path, quality=quality), f"reused ({done} steps)", False
    if codec_path.exists():
        codec, note = load_codec(codec_path, quality=quality), f"continued from step {done}, "
    else:
        codec, note = build_codec("bmshj2018-hyperprior", quality), ""
    summary = train_codec(codec, args.data, config, checkpoint=codec_path, progress=args.progress,
                          resume=done is not None)
    note += (f"trained to {args.codec_steps} steps, PSNR {summary['psnr']:.1f} dB at {summary['bpp']:.3f} bpp "
             f"(train crops, last 10% of steps)")
    return codec, note, True


def codec_classes(out: Path) -> tuple[str, ...]:
    return LatentCache(out / "latents" / "val").classes


if __name__ == "__main__":
    sys.exit(run_command("joint_vs_frozen.py", main))
