"""Curriculum pre-training (CPT) vs plain fine-tuning (NPT) for crowd counting on heavily compressed JPEGs.

The CPT study (docs/references.md, "Curriculum pre-training") trains a counting network at quality q0 = 75, then either
fine-tunes it directly at the target quality (NPT) or walks down the curriculum
(75, 60, 40, 30, 25, 20, 15, 10, 5, 1) one quality at a time, cascading the weights and
restarting the optimizer and schedule at every step (CPT). It reports MAE improvements of
19.7% / 15.6% at quality 1 / 5 (DISCO, CSRNet). This script runs the same protocol at CPU scale
on the embedded crowd set with the DCT-input CSRNet:

1. q0 model: ``--quality 75``, ``--q0-epochs`` epochs;
2. NPT: from the q0 model, ``--step-epochs`` epochs at the target quality;
3. CPT: from the q0 model, ``--step-epochs`` epochs at each quality of the curriculum after 75,
   down to 1 (the phase at quality 5 is the CPT result for target 5);
4. NPT-equal (the fair control): from the q0 model, straight at the target quality for as many
   epochs as the whole curriculum down to it (``--step-epochs`` x its number of phases: 8 for
   quality 5, 9 for quality 1), so that it trains exactly as long as CPT.

Every arm is repeated for each seed of ``--seeds`` (3 by default; the q0 model too), and the
table gives the mean +- sample standard deviation over seeds of the final validation MAE/MSE,
and CPT's mean relative MAE improvement over NPT and over NPT-equal. The defaults are about
600 epochs on the crowd set: 3.5 hours or more on 2 shared CPU cores (not run; estimated from
21 s per epoch). ``--quick`` (the tiny crowd set, 2 / 1 epochs) takes about 2.5 minutes.

    python benchmarks/cpt_vs_npt.py [--quick] [--input dct|rgb] [--seeds 0 1 2] [--output runs/cpt-vs-npt]

Every arm is one :func:`cdomain.train.run` (modes ``standard``, ``npt`` and ``cpt``), with its run
folder under ``--output`` (replaced when the script is run again).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from cdomain.atomic import atomic_write
from cdomain.cli.errors import positive_int, run_command
from cdomain.train import TrainConfig, run
from cdomain.train.config import DEFAULT_CURRICULUM
from cdomain.train.modes import curriculum_prefix

TARGETS = (5, 1)


def last_record(output: Path, quality: int) -> dict:
    """The final epoch's record at ``quality`` in a run's metrics."""
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["quality"] == quality][-1]


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def show(values, digits: int = 2, suffix: str = "") -> str:
    mean, std = mean_std(values)
    return f"{mean:.{digits}f}{suffix} ± {std:.{digits}f}{suffix}"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("runs/cpt-vs-npt"))
    parser.add_argument("--input", choices=("dct", "rgb"), default="dct")
    parser.add_argument("--data", default="crowd")
    parser.add_argument("--q0-epochs", type=positive_int, default=30)
    parser.add_argument("--step-epochs", type=positive_int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="crowd-tiny, 2 / 1 epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.data, args.q0_epochs, args.step_epochs = "crowd-tiny", 2, 1
    start = time.perf_counter()
    out = args.output
    curriculum = DEFAULT_CURRICULUM[1:]
    q0 = DEFAULT_CURRICULUM[0]
    print(f"CPT vs NPT on {args.data} ({args.input}): q0 {args.q0_epochs} epochs, {args.step_epochs} per curriculum "
          f"step, seeds {args.seeds}; load {os.getloadavg()[0]:.1f}", flush=True)
    results = {target: {"npt": [], "npt_equal": [], "cpt": []} for target in TARGETS}
    q0_records = []
    for seed in args.seeds:
        root = out / f"seed{seed}"
        common = TrainConfig(task="counting", data=args.data, input=args.input, seed=seed, optimizer="adamw",
                             lr=1e-3, weight_decay=1e-4, quiet=True, overwrite=True)
        run(common.replace(quality=q0, epochs=args.q0_epochs, output=str(root / f"q{q0}")))
        q0_records.append(last_record(root / f"q{q0}", q0))
        step = common.replace(epochs=args.step_epochs, warmup_epochs=0, init=str(root / f"q{q0}" / "model.safetensors"))
        for target in TARGETS:
            phases = len(curriculum_prefix(curriculum, target))
            run(step.replace(mode="npt", target_quality=target, output=str(root / f"npt-q{target}")))
            run(step.replace(mode="npt", target_quality=target, epochs=phases * args.step_epochs,
                             output=str(root / f"npt-equal-q{target}")))
        run(step.replace(mode="cpt", curriculum=curriculum, target_quality=min(TARGETS), output=str(root / "cpt")))
        for target in TARGETS:
            for arm, folder in (("npt", f"npt-q{target}"), ("npt_equal", f"npt-equal-q{target}"), ("cpt", "cpt")):
                results[target][arm].append(last_record(root / folder, target))
        print(f"seed {seed} done ({time.perf_counter() - start:.0f} s)", flush=True)

    rows = []
    for target in TARGETS:
        arms = results[target]
        mae = {arm: [r["val_mae"] for r in records] for arm, records in arms.items()}
        mse = {arm: [r["val_mse"] for r in records] for arm, records in arms.items()}
        gain = {other: [100 * (a - c) / a for a, c in zip(mae[other], mae["cpt"])] for other in ("npt", "npt_equal")}
        rows.append({"quality": target, "epochs": {"npt": args.step_epochs,
                                                   "npt_equal": len(curriculum_prefix(curriculum, target)) * args.step_epochs,
                                                   "cpt": len(curriculum_prefix(curriculum, target)) * args.step_epochs},
                     "mae": mae, "mse": mse, "cpt_improvement_pct": gain})
    atomic_write(out / "table.json", json.dumps({"seeds": args.seeds, "q0": q0_records, "rows": rows}, indent=2))
    print(f"\nq0 models ({args.input}, quality {q0}): val MAE {show(r['val_mae'] for r in q0_records)}, "
          f"MSE {show(r['val_mse'] for r in q0_records)} over {len(args.seeds)} seed(s)")
    print("| target quality | NPT MAE (epochs) | NPT-equal MAE (epochs) | CPT MAE (epochs) | NPT MSE | NPT-equal MSE | "
          "CPT MSE | CPT MAE gain vs NPT | vs NPT-equal |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        mae, mse, epochs, gain = row["mae"], row["mse"], row["epochs"], row["cpt_improvement_pct"]
        print(f"| {row['quality']} | {show(mae['npt'])} ({epochs['npt']}) | {show(mae['npt_equal'])} "
              f"({epochs['npt_equal']}) | {show(mae['cpt'])} ({epochs['cpt']}) | {show(mse['npt'])} | "
              f"{show(mse['npt_equal'])} | {show(mse['cpt'])} | {show(gain['npt'], 1, '%')} | "
              f"{show(gain['npt_equal'], 1, '%')} |")
    print(f"\nrun time {time.perf_counter() - start:.0f} s, load {os.getloadavg()[0]:.1f}; results in {out}")
    return {"rows": rows, "q0": q0_records}


if __name__ == "__main__":
    sys.exit(run_command("cpt_vs_npt.py", main))
