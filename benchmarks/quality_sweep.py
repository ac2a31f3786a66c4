"""Compression impact on the embedded classification set: no mitigation vs fine-tuned vs jpeg-aug.

Reproduces the design of the compression-impact studies (docs/references.md, "Compression-impact studies") at CPU scale:

1. train the default DCT network on the original (quality 90) images: the "no mitigation" model;
2. fine-tune a copy of it at each evaluation quality (npt mode): the "fine-tuned" models;
3. train one network from scratch with random-quality JPEG augmentation (10..90): "jpeg-aug";
4. evaluate all of them on the validation images re-encoded at each quality.

It prints accuracy beside the mean compressed size per image and the share of the accuracy lost
to compression that fine-tuning recovers. Run time on 2 CPU cores with the defaults: about
15 minutes (``--quick``: about 3 minutes, noisier).

    python benchmarks/quality_sweep.py [--quick] [--output runs/quality-sweep]

Every model is trained by :func:`cdomain.train.run` (one run folder each under ``--output``,
replaced when the script is run again) and evaluated with :mod:`cdomain.evaluate.sweep`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cdomain.checkpoint import load_checkpoint
from cdomain.data.registry import open_dataset
from cdomain.data.quality import reencoded_samples
from cdomain.evaluate.sweep import SweepPoint, compressed_size, evaluate_checkpoint, write_results
from cdomain.train import TrainConfig, run

QUALITIES = (5, 10, 15, 50, 75, 95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("runs/quality-sweep"))
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the base and jpeg-aug models")
    parser.add_argument("--finetune-epochs", type=int, default=8)
    parser.add_argument("--qualities", default=",".join(map(str, QUALITIES)))
    parser.add_argument("--quick", action="store_true", help="10 / 3 epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.finetune_epochs = 10, 3
    qualities = [int(q) for q in args.qualities.split(",")]
    start = time.perf_counter()
    out = args.output
    common = TrainConfig(data="textures", input="dct", fbs=16, seed=args.seed, quiet=True, overwrite=True)

    run(common.replace(epochs=args.epochs, output=str(out / "base")))
    run(common.replace(epochs=args.epochs, mode="jpeg-aug", aug_quality=(10, 90), output=str(out / "jpeg-aug")))
    for quality in qualities:
        run(common.replace(mode="npt", init=str(out / "base" / "model.safetensors"), target_quality=quality,
                           epochs=args.finetune_epochs, lr=0.01, warmup_epochs=0,
                           output=str(out / f"finetuned-q{quality}")))

    base = load_checkpoint(out / "base" / "model.safetensors")
    augmented = load_checkpoint(out / "jpeg-aug" / "model.safetensors")
    val = open_dataset("textures").split("val")
    original = evaluate_checkpoint(base, val, crop=None)["acc"]
    points, rows = [], []
    for quality in qualities:
        data = reencoded_samples(val, quality)
        size, bpp = compressed_size(data)
        tuned = load_checkpoint(out / f"finetuned-q{quality}" / "model.safetensors")
        row = {"quality": quality, "mean_bytes": size, "bpp": bpp}
        for name, checkpoint in (("no_mitigation", base), ("fine_tuned", tuned), ("jpeg_aug", augmented)):
            result = evaluate_checkpoint(checkpoint, data, crop=None)
            row[name] = result["acc"]
            points.append(SweepPoint(name, quality, "accuracy", result["acc"], result["loss"], size, bpp, result["images"]))
        lost = original - row["no_mitigation"]
        row["recovered_pct"] = 100 * (row["fine_tuned"] - row["no_mitigation"]) / lost if lost >= 2.0 else None
        rows.append(row)
    write_results(points, out)
    (out / "table.json").write_text(json.dumps({"original_accuracy": original, "rows": rows}, indent=2))

    print(f"\nno-mitigation accuracy on the original q90 images: {original:.1f}%")
    print("| quality | bytes/image | bpp | no mitigation | fine-tuned at q | jpeg-aug 10..90 | loss recovered by fine-tuning |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        recovered = "n/a (no loss)" if row["recovered_pct"] is None else f"{row['recovered_pct']:.0f}%"
        print(f"| {row['quality']} | {row['mean_bytes']:.0f} | {row['bpp']:.2f} | {row['no_mitigation']:.1f}% | "
              f"{row['fine_tuned']:.1f}% | {row['jpeg_aug']:.1f}% | {recovered} |")
    print(f"\nrun time {time.perf_counter() - start:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
