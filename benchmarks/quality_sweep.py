"""Compression impact on an embedded set: no mitigation vs fine-tuned vs jpeg-aug.

``--task classification`` (default) uses the ``textures`` set and accuracy; ``--task
segmentation`` the ``mosaic`` set (the same textures tiled into regions, per-pixel labels) and
mIoU, with pixel accuracy beside it.

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
import os
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
    parser.add_argument("--task", choices=("classification", "segmentation"), default="classification")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.finetune_epochs = 10, 3
    qualities = [int(q) for q in args.qualities.split(",")]
    start = time.perf_counter()
    out = args.output
    data, metric, key = ("textures", "accuracy", "acc") if args.task == "classification" else ("mosaic", "miou", "miou")
    common = TrainConfig(task=args.task, data=data, input="dct", fbs=16, seed=args.seed, quiet=True, overwrite=True)

    run(common.replace(epochs=args.epochs, output=str(out / "base")))
    run(common.replace(epochs=args.epochs, mode="jpeg-aug", aug_quality=(10, 90), output=str(out / "jpeg-aug")))
    for quality in qualities:
        run(common.replace(mode="npt", init=str(out / "base" / "model.safetensors"), target_quality=quality,
                           epochs=args.finetune_epochs, lr=0.01 if args.task == "classification" else 1e-3,
                           warmup_epochs=0,
                           output=str(out / f"finetuned-q{quality}")))

    base = load_checkpoint(out / "base" / "model.safetensors")
    augmented = load_checkpoint(out / "jpeg-aug" / "model.safetensors")
    dataset = open_dataset(data, args.task)
    val, target = dataset.split("val"), dataset.target("val")
    first = evaluate_checkpoint(base, val, crop=None, target=target)
    original = first[key]
    original_pixel = first.get("pixel_acc")
    points, rows = [], []
    for quality in qualities:
        data = reencoded_samples(val, quality)
        size, bpp = compressed_size(data)
        tuned = load_checkpoint(out / f"finetuned-q{quality}" / "model.safetensors")
        row = {"quality": quality, "mean_bytes": size, "bpp": bpp}
        for name, checkpoint in (("no_mitigation", base), ("fine_tuned", tuned), ("jpeg_aug", augmented)):
            result = evaluate_checkpoint(checkpoint, data, crop=None, target=target)
            row[name] = result[key]
            if "pixel_acc" in result:
                row[f"{name}_pixel_acc"] = result["pixel_acc"]
            points.append(SweepPoint(name, quality, metric, result[key], result["loss"], size, bpp, result["images"]))
        lost = original - row["no_mitigation"]
        row["recovered_pct"] = 100 * (row["fine_tuned"] - row["no_mitigation"]) / lost if lost >= 2.0 else None
        rows.append(row)
    write_results(points, out)
    (out / "table.json").write_text(json.dumps({"task": args.task, "metric": metric, "original": original,
                                                "original_pixel_acc": original_pixel, "rows": rows}, indent=2))

    pixel = "" if original_pixel is None else f" (pixel accuracy {original_pixel:.1f}%)"
    print(f"\nno-mitigation {metric} on the original q90 images: {original:.1f}%{pixel}")
    extra = " no-mitigation pixel acc | drop vs original |" if args.task == "segmentation" else " drop vs original |"
    print("| quality | bytes/image | bpp | no mitigation | fine-tuned at q | jpeg-aug 10..90 | "
          f"loss recovered by fine-tuning |{extra}")
    print("|---|---|---|---|---|---|---|" + "---|" * extra.count("|"))
    for row in rows:
        recovered = "n/a (no loss)" if row["recovered_pct"] is None else f"{row['recovered_pct']:.0f}%"
        drop = f" {100 * (original - row['no_mitigation']) / max(original, 1e-9):.0f}% |"
        tail = (f" {row['no_mitigation_pixel_acc']:.1f}% |" if args.task == "segmentation" else "") + drop
        print(f"| {row['quality']} | {row['mean_bytes']:.0f} | {row['bpp']:.2f} | {row['no_mitigation']:.1f}% | "
              f"{row['fine_tuned']:.1f}% | {row['jpeg_aug']:.1f}% | {recovered} |{tail}")
    print(f"\nrun time {time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.1f} at the end; "
          f"results in {out}")


if __name__ == "__main__":
    main()
