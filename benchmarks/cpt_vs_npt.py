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
   down to 1 (the phase at quality 5 is the CPT result for target 5).

It prints validation MAE/MSE at each target quality and CPT's relative MAE improvement over NPT.
Both arms see the same data and the same number of epochs at the target quality; CPT spends more
epochs in total, as in the study. Run time on 2 CPU cores with the defaults: about 20 minutes
(``--quick``: about 5 minutes).

    python benchmarks/cpt_vs_npt.py [--quick] [--input dct|rgb] [--output runs/cpt-vs-npt]

Every arm is one :func:`cdomain.train.run` (modes ``standard``, ``npt`` and ``cpt``), with its run
folder under ``--output`` (replaced when the script is run again).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cdomain.train import TrainConfig, run
from cdomain.train.config import DEFAULT_CURRICULUM

TARGETS = (5, 1)


def last_record(output: Path, quality: int) -> dict:
    """The final epoch's record at ``quality`` in a run's metrics."""
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["quality"] == quality][-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("runs/cpt-vs-npt"))
    parser.add_argument("--input", choices=("dct", "rgb"), default="dct")
    parser.add_argument("--data", default="crowd")
    parser.add_argument("--q0-epochs", type=int, default=30)
    parser.add_argument("--step-epochs", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="12 / 3 epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.q0_epochs, args.step_epochs = 12, 3
    start = time.perf_counter()
    out = args.output
    common = TrainConfig(task="counting", data=args.data, input=args.input, seed=args.seed, optimizer="adamw",
                         lr=1e-3, weight_decay=1e-4, quiet=True, overwrite=True)
    q0 = DEFAULT_CURRICULUM[0]
    run(common.replace(quality=q0, epochs=args.q0_epochs, output=str(out / f"q{q0}")))
    init = str(out / f"q{q0}" / "model.safetensors")
    step = common.replace(epochs=args.step_epochs, warmup_epochs=0, init=init)
    for target in TARGETS:
        run(step.replace(mode="npt", target_quality=target, output=str(out / f"npt-q{target}")))
    run(step.replace(mode="cpt", curriculum=DEFAULT_CURRICULUM[1:], target_quality=min(TARGETS),
                     output=str(out / "cpt")))

    rows = []
    for target in TARGETS:
        npt, cpt = last_record(out / f"npt-q{target}", target), last_record(out / "cpt", target)
        improvement = 100 * (npt["val_mae"] - cpt["val_mae"]) / npt["val_mae"]
        rows.append({"quality": target, "npt_mae": npt["val_mae"], "npt_mse": npt["val_mse"],
                     "cpt_mae": cpt["val_mae"], "cpt_mse": cpt["val_mse"], "mae_improvement_pct": improvement})
    q0_record = last_record(out / f"q{q0}", q0)
    (out / "table.json").write_text(json.dumps({"q0": q0_record, "rows": rows}, indent=2))
    print(f"\nq0 model ({args.input}, quality {q0}): val MAE {q0_record['val_mae']:.2f}, MSE {q0_record['val_mse']:.2f}")
    print("| target quality | NPT MAE | NPT MSE | CPT MAE | CPT MSE | CPT MAE improvement |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['quality']} | {row['npt_mae']:.2f} | {row['npt_mse']:.2f} | {row['cpt_mae']:.2f} | "
              f"{row['cpt_mse']:.2f} | {row['mae_improvement_pct']:+.1f}% |")
    print(f"\nrun time {time.perf_counter() - start:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
