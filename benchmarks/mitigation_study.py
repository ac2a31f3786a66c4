"""Mitigations of JPEG damage to a task network: none, off-the-shelf AC, TTAC, supervised fine-tuning.

The design of Ehrlich et al. ("Analyzing and Mitigating JPEG Compression Defects in Deep
Learning", docs/references.md) at CPU scale, for any registered task (``--task``; the data set
and networks are the task's defaults):

1. *no mitigation*: the task network trained on the uncompressed (original) images;
2. *off-the-shelf AC*: an artifact corrector (``--mode ac``: L1 on pixels, qualities 10..90) put
   in front of the unchanged network;
3. *TTAC*: that corrector tuned against the frozen network (``--mode ttac``, no labels; logit L1
   for classification, backbone-feature L1 for dense tasks), in front of the unchanged network;
4. *supervised fine-tuning*: the network itself fine-tuned with labels on images re-encoded at
   random qualities 10..90 (``--mode jpeg-aug --init``).

Each arm is evaluated on the validation images re-encoded at every quality of ``--qualities``
(the cached re-encodes of a quality sweep) and on the original files, where the correction arms
skip the corrector (so they keep the no-mitigation figure by construction) and the fine-tuned
network is evaluated as it now is. "Drop" is the loss against the *no-mitigation network on the
original files*, in the task metric's units, positive = worse. Prints a Markdown table and the
seconds each arm took (training + evaluation), writes ``table.json`` and ``mitigation.png``
(matplotlib) into ``--output``.

    python benchmarks/mitigation_study.py [--quick] [--task classification] [--output runs/mitigation]

Every model is trained by :func:`cdomain.train.run` (one run folder per arm under ``--output``,
replaced when the script runs again).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from cdomain.atomic import atomic_write
from cdomain.checkpoint import load_checkpoint
from cdomain.cli.errors import positive_int, run_command
from cdomain.data.quality import reencoded_samples
from cdomain.data.registry import open_dataset
from cdomain.evaluate.sweep import evaluate_checkpoint, png_bytes, pyplot
from cdomain.train import TrainConfig, run
from cdomain.train.config import TASK_DEFAULTS
from cdomain.train.correction import evaluate_corrected
from cdomain.train.engine import get_task

ARMS = ("no_mitigation", "ac", "ttac", "fine_tuned")
LABELS = {"no_mitigation": "no mitigation", "ac": "off-the-shelf AC", "ttac": "TTAC", "fine_tuned": "fine-tuned"}


def setup_args() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--task", default="classification", help="a registered task (cdomain.train.engine.TASKS)")
    parser.add_argument("--data", default=None, help="default: the task's embedded set")
    parser.add_argument("--input", default="dct", choices=("dct", "rgb"), help="what the task network reads")
    parser.add_argument("--qualities", default="10,20,30,40,50,60,70,80,90")
    parser.add_argument("--epochs", type=positive_int, default=15, help="epochs of the task network")
    parser.add_argument("--ac-epochs", type=positive_int, default=4, help="off-the-shelf corrector epochs")
    parser.add_argument("--ttac-epochs", type=positive_int, default=4, help="task-targeted tuning epochs")
    parser.add_argument("--ft-epochs", type=positive_int, default=4, help="supervised fine-tuning epochs")
    parser.add_argument("--ttac-loss", default="auto", choices=("auto", "logits", "features"),
                        help="auto: logits for classification, features for dense tasks")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="default: the task's")
    parser.add_argument("--requant", default="pixel", choices=("pixel", "dct"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=Path("runs/mitigation"))
    parser.add_argument("--quick", action="store_true",
                        help="tiny configuration: the task's -tiny set, 6 / 1 / 1 / 1 epochs of batch 16, qualities 10,50")
    return parser


def main(argv=None) -> dict:
    args = setup_args().parse_args(argv)
    task = get_task(args.task)
    data = args.data or TASK_DEFAULTS[args.task]["data"]
    if args.quick:
        data = args.data or f"{data}-tiny"
        args.epochs, args.ac_epochs, args.ttac_epochs, args.ft_epochs = 6, 1, 1, 1
        args.qualities, args.batch_size = "10,50", 16
    qualities = [int(q) for q in args.qualities.split(",")]
    ttac_loss = args.ttac_loss if args.ttac_loss != "auto" else ("logits" if args.task == "classification" else "features")
    out, start = args.output, time.perf_counter()
    print(f"mitigation study: task {args.task} on {data}, {args.input} input, qualities {qualities}; epochs "
          f"task {args.epochs}, ac {args.ac_epochs}, ttac {args.ttac_epochs} ({ttac_loss}), fine-tune {args.ft_epochs}; "
          f"seed {args.seed}, {args.threads} thread(s), load {os.getloadavg()[0]:.1f}", flush=True)
    common = TrainConfig(task=args.task, data=data, input=args.input, seed=args.seed, requant=args.requant,
                         batch_size=args.batch_size, threads=args.threads, quiet=True, overwrite=True)
    seconds = {}

    def timed(arm, config):
        t0 = time.perf_counter()
        run(config)
        seconds[arm] = time.perf_counter() - t0

    timed("no_mitigation", common.replace(epochs=args.epochs, output=str(out / "base")))
    base_path = out / "base" / "model.safetensors"
    low = min(qualities)
    corrector = common.replace(input="dct", model=None, quality=low, aug_quality=(10, 90), optimizer="adamw", lr=1e-3,
                               weight_decay=0.0, warmup_epochs=0)
    timed("ac", corrector.replace(mode="ac", epochs=args.ac_epochs, task_model=(str(base_path),),
                                  output=str(out / "ac")))
    timed("ttac", corrector.replace(mode="ttac", epochs=args.ttac_epochs, task_model=(str(base_path),),
                                    ttac_loss=ttac_loss, init=str(out / "ac" / "model.safetensors"),
                                    output=str(out / "ttac")))
    seconds["ttac"] += seconds["ac"]  # TTAC starts from the off-the-shelf corrector
    timed("fine_tuned", common.replace(mode="jpeg-aug", aug_quality=(10, 90), init=str(base_path),
                                       epochs=args.ft_epochs, warmup_epochs=0, output=str(out / "fine-tuned")))

    dataset = open_dataset(data, args.task)
    val, target = dataset.split("val"), dataset.target("val")
    base = load_checkpoint(base_path)
    tuned = load_checkpoint(out / "fine-tuned" / "model.safetensors")
    correctors = {arm: load_checkpoint(out / arm / "model.safetensors") for arm in ("ac", "ttac")}
    metric = task.metric

    def score(arm, samples, compressed=None):
        t0 = time.perf_counter()
        if arm in correctors and compressed is not None:
            result = evaluate_corrected(base, correctors[arm], samples, compressed, crop=None, target=target)
        else:
            result = evaluate_checkpoint(tuned if arm == "fine_tuned" else base, compressed or samples, crop=None,
                                         target=target)
        seconds[arm] += time.perf_counter() - t0
        return result[metric]

    original = {arm: score(arm, val) for arm in ARMS}
    reference = original["no_mitigation"]
    rows = []
    for quality in qualities:
        compressed = reencoded_samples(val, quality, args.requant)
        rows.append({"quality": quality, **{arm: score(arm, val, compressed) for arm in ARMS}})

    def drop(value):
        return (reference - value) if task.higher_is_better else (value - reference)

    result = {"task": args.task, "data": data, "metric": metric, "higher_is_better": task.higher_is_better,
              "original": original, "rows": rows, "seconds": seconds, "ttac_loss": ttac_loss,
              "epochs": {"task": args.epochs, "ac": args.ac_epochs, "ttac": args.ttac_epochs, "ft": args.ft_epochs}}
    atomic_write(out / "table.json", json.dumps(result, indent=2))
    unit = task.unit
    print(f"\n{metric} on the original files: " + ", ".join(f"{LABELS[a]} {original[a]:.2f}{unit}" for a in ARMS)
          + "  (correction arms skip the corrector there)")
    print("| quality | " + " | ".join(f"{LABELS[a]} {metric} (drop)" for a in ARMS) + " |")
    print("|---|" + "---|" * len(ARMS))
    for row in rows:
        print(f"| {row['quality']} | " + " | ".join(f"{row[a]:.2f}{unit} ({drop(row[a]):+.2f})" for a in ARMS) + " |")
    print("| seconds | " + " | ".join(f"{seconds[a]:.0f}" for a in ARMS) + " |")
    written = plot(result, out)
    print(f"\n{written}; run time {time.perf_counter() - start:.0f} s, load {os.getloadavg()[0]:.1f}; results in {out}")
    return result


def plot(result: dict, out: Path) -> str:
    """``mitigation.png``: the metric against quality, one curve per arm; or why there is none."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "no plot: matplotlib is not installed"
    figure, axes = pyplot().subplots(figsize=(6.4, 4.2), dpi=120)
    qualities = [row["quality"] for row in result["rows"]]
    for arm in ARMS:
        axes.plot(qualities, [row[arm] for row in result["rows"]], marker="o", label=LABELS[arm])
    axes.axhline(result["original"]["no_mitigation"], color="grey", linestyle="--", label="original files")
    axes.set_xlabel("JPEG quality")
    axes.set_ylabel(result["metric"])
    axes.set_title(f"{result['task']} on {result['data']}: mitigations")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return f"plot {atomic_write(out / 'mitigation.png', png_bytes(figure))}"


if __name__ == "__main__":
    sys.exit(run_command("mitigation_study.py", main))
