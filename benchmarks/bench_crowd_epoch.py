"""Memory and time per epoch of counting on a real-crowd-layout dataset at Part A's resolution.

Generates (once, into ``--root``) a ShanghaiTech-layout dataset of ``--images`` 1024x768 crowd
scenes in ``train_data`` (the embedded renderer's people, JPEG quality 90) plus 10 test
images, so the reader, the 20% seeded validation split and the geometry-adaptive kernels are
the real ones. Then trains one epoch per arm, each in its own ``cdomain-train`` process:

- ``rgb-crop``: ``--input rgb`` CSRNet on random 256x256 crops, batch 8 (the baseline);
- ``dct-crop``: the DCT-input CSRNet on the same crops;
- ``rgb-whole``: whole 1024x768 images, batch 1 (the published CSRNet recipe's input size).

Validation is on whole images, one at a time, in every arm. Arms alternate within each round
(``--rounds``); the figures are medians: the epoch's seconds (train + validation, from the
run's ``metrics.jsonl``), training images per second, and the process's peak resident memory
(``ru_maxrss`` of that child, from ``os.wait4``), with ratios against the baseline arm. The
machine load (``os.getloadavg``) is printed before and after. ``--width`` scales the networks
(``csrnet``, no BatchNorm, and ``csrnet_dct``; 16, the default, is a quarter of the published
width and what a CPU can run; 64 is the published CSRNet).

    python benchmarks/bench_crowd_epoch.py [--root DIR] [--images 100] [--rounds 1] [--width 16] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 1024, 768


def generate(root: Path, images: int) -> Path:
    """ShanghaiTech layout under ``root/part_A`` (skipped when already there)."""
    from scipy.io import savemat

    from cdomain.data.crowd import render_crowd
    from cdomain.jpeg.encode import write_jpeg

    part = root / "part_A"
    done = part / "complete.json"
    if done.is_file() and json.loads(done.read_text()) == {"images": images, "size": [WIDTH, HEIGHT]}:
        return part
    start = time.perf_counter()
    for folder, count, offset in (("train_data", images, 0), ("test_data", 10, 1 << 20)):
        (part / folder / "ground-truth").mkdir(parents=True, exist_ok=True)
        for n in range(1, count + 1):
            scene = render_crowd(offset + n, WIDTH, 400)
            points = scene.points[scene.points[:, 1] < HEIGHT].astype(np.float64)
            write_jpeg(scene.image[:HEIGHT], part / folder / "images" / f"IMG_{n}.jpg", 90)
            struct = np.empty((1, 1), dtype=[("location", object), ("number", object)])
            struct[0, 0] = (points, np.array([[float(len(points))]]))
            cell = np.empty((1, 1), dtype=object)
            cell[0, 0] = struct
            savemat(str(part / folder / "ground-truth" / f"GT_IMG_{n}.mat"), {"image_info": cell})
    done.write_text(json.dumps({"images": images, "size": [WIDTH, HEIGHT]}))
    print(f"generated {images} + 10 images of {WIDTH}x{HEIGHT} in {time.perf_counter() - start:.0f}s into {part}")
    return part


ARMS = {
    "rgb-crop": ["--input", "rgb", "--model", "csrnet", "--crop", "256", "--batch-size", "8"],
    "dct-crop": ["--input", "dct", "--model", "csrnet_dct", "--fbs", "16", "--crop", "256", "--batch-size", "8"],
    "rgb-whole": ["--input", "rgb", "--model", "csrnet", "--batch-size", "1"],
}


def run_arm(name: str, data: Path, work: Path, width: int, device: str, cache: Path) -> dict:
    output = work / f"{name}-{time.monotonic_ns()}"
    work.mkdir(parents=True, exist_ok=True)
    config = work / f"width{width}.yaml"
    config.write_text(f"model_args: {{width: {width}}}\n")
    argv = [sys.executable, "-m", "cdomain.cli.train", "--config", str(config), "--task", "counting",
            "--data", str(data), "--epochs", "1", "--lr", "1e-4", "--warmup-epochs", "0", "--quiet",
            "--device", device, "--threads", "0", "--output", str(output), *ARMS[name]]
    env = {**os.environ, "CDOMAIN_DATA": str(cache)}
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    error = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{name} failed:\n{error}")
    record = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()][-1]
    return {"seconds": record["seconds"], "images_per_second": record["train_images_per_second"],
            "peak_mib": usage.ru_maxrss / 1024, "val_mae": record["val_mae"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=None, help="dataset folder (default: a temporary one)")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--width", type=int, default=16, help="network width (64: the published CSRNet)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arms", default=",".join(ARMS))
    args = parser.parse_args()
    arms = args.arms.split(",")
    with tempfile.TemporaryDirectory() as scratch:
        root = args.root or Path(scratch) / "data"
        data = generate(root, args.images)
        work, cache = Path(scratch) / "runs", Path(scratch) / "cache"
        print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs; "
              f"width {args.width}, device {args.device}")
        results: dict[str, list[dict]] = {name: [] for name in arms}
        for round_ in range(args.rounds):
            for name in (arms if round_ % 2 == 0 else arms[::-1]):  # interleaved, alternating order
                results[name].append(run_arm(name, data, work, args.width, args.device, cache))
        print(f"load after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        base = {key: statistics.median(r[key] for r in results[arms[0]]) for key in ("seconds", "peak_mib")}
        print(f"{'arm':>10} {'s/epoch':>8} {'x base':>7} {'train img/s':>11} {'peak MiB':>9} {'x base':>7}")
        for name in arms:
            seconds = statistics.median(r["seconds"] for r in results[name])
            speed = statistics.median(r["images_per_second"] for r in results[name])
            peak = statistics.median(r["peak_mib"] for r in results[name])
            print(f"{name:>10} {seconds:8.1f} {seconds / base['seconds']:7.2f} {speed:11.2f} {peak:9.0f} "
                  f"{peak / base['peak_mib']:7.2f}")
        print(f"{args.images} images ({round(args.images * 0.8)} train / {round(args.images * 0.2)} val, whole-image "
              f"validation), {args.rounds} round(s); medians")


if __name__ == "__main__":
    main()
