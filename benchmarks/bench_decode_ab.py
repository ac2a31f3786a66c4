"""Native decoder A/B: this checkout's ``cdomain.jpeg.native`` against the one of another git
revision, on the same files, interleaved.

A change to the decoder's compiled loops must not slow the default (strict) path. This loads
the baseline revision's ``native.py`` as a separate module (compiled separately by Numba),
decodes each file of the bench_decode corpus with both, back to back, in alternating order
(A then B, B then A, ...) over several rounds,
and prints each file group's median time per image and the ratio baseline / current
(above 1: the current decoder is faster), with the machine load.

    python benchmarks/bench_decode_ab.py [--baseline HEAD~1] [--images 16] [--rounds 9]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_decode import make_corpus  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def load_baseline(revision: str, folder: Path):
    source = subprocess.run(["git", "show", f"{revision}:cdomain/jpeg/native.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = folder / "native_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("native_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD~1", help="git revision of the baseline decoder")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    from cdomain.jpeg import native as current

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        baseline = load_baseline(args.baseline, folder)
        (folder / "corpus").mkdir()
        paths = make_corpus(folder / "corpus", args.images)
        files = [(path.name, path.read_bytes()) for path in paths]
        arms = {"baseline": baseline.decode, "current": current.decode}
        for decode in arms.values():  # compile (or load from cache) before timing
            for _, data in files:
                decode(data)
        times = {name: {file: [] for file, _ in files} for name in arms}
        order = list(arms)
        for round_index in range(args.rounds):
            for file, data in files:  # per file, both arms back to back: load spikes hit both
                for name in order if round_index % 2 == 0 else order[::-1]:
                    start = time.perf_counter()
                    arms[name](data)
                    times[name][file].append(time.perf_counter() - start)
    groups: dict[str, list[str]] = {}
    for file, _ in files:
        group = "progressive" if "_prog" in file else f"sequential {file.split('_')[1].split('.')[0]}"
        groups.setdefault(group, []).append(file)
    groups["all"] = [file for file, _ in files]
    print(f"load average (1, 5, 15 min): {os.getloadavg()}; {len(files)} files, {args.rounds} interleaved rounds")
    print(f"{'files':<24}{'baseline ms':>12}{'current ms':>12}{'baseline/current':>18}")
    for group, members in groups.items():
        a = sum(statistics.median(times["baseline"][f]) for f in members) / len(members) * 1e3
        b = sum(statistics.median(times["current"][f]) for f in members) / len(members) * 1e3
        print(f"{group:<24}{a:>12.3f}{b:>12.3f}{a / b:>17.3f}x")


if __name__ == "__main__":
    main()
