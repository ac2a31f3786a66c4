"""Dataset preparation throughput: 1 worker against 2, for ``cdomain-prepare resize`` and the re-encoded cache.

The corpus is generated: photo-like images of ImageNet's typical sizes (500x375 and 375x500,
a few larger), 4:2:0 and 4:4:4, qualities 75 and 90, in an ImageNet-style tree
(``train/<wnid>/*.JPEG``). Two measurements, each with its arms interleaved (rounds alternate
which arm runs first) and the median of the rounds reported:

* ``resize``: :func:`cdomain.data.resize.resize_tree` to a shortest side of 256 at the source's
  quality, into a fresh output folder each round, with ``workers=1`` (in this process) and
  ``workers=2`` (two worker processes);
* ``cache``: :func:`cdomain.data.quality.reencoded_samples` at quality 50 (pixel route), into a
  fresh cache folder each round, with ``workers=0`` and ``workers=2``.

Beside files/s, each arm prints the cores it kept busy (CPU seconds of the process and its
workers over wall seconds) and the share of the time the main process waited, runnable, for a
CPU: on a machine whose other jobs take the cores, a second worker may get no extra CPU at all. Every process runs one Numba thread (``NUMBA_NUM_THREADS=1``), so one worker is one core.
Figures include the worker start-up, as a user pays it. The machine's load average is printed
before and after each measurement; with other jobs on the cores, two workers cannot reach 2x.

    python benchmarks/bench_prepare.py [--images 128] [--cache-images 256] [--rounds 5] [--skip-cache]

A started re-encoding worker pays a start-up before its first file (imports, Numba's compiled
kernels loaded from the on-disk cache; resize workers are forked and start at once), so the
cache is measured on more files.

Target (a quiet 2-core machine): 2 workers >= 1.7x one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# One thread per process (Numba's parallel kernels would otherwise let "1 worker" use both cores);
# set before cdomain imports Numba, and inherited by the worker processes.
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

from cdomain.data.folder import image_folder  # noqa: E402
from cdomain.data.quality import reencoded_samples  # noqa: E402
from cdomain.data.resize import ResizeSettings, resize_tree  # noqa: E402


def photo_like(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth multi-scale content with edges and noise (compresses like a photo)."""
    image = np.zeros((height, width, 3))
    for octave in range(5):
        scale = 2**octave * 4
        grid = rng.uniform(0, 255, (height // scale + 2, width // scale + 2, 3)).astype(np.uint8)
        image += np.asarray(Image.fromarray(grid).resize((width, height), Image.BICUBIC), float) * 0.6 ** (4 - octave)
    image = (image - image.min()) / (np.ptp(image) + 1e-9) * 200 + 20
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_corpus(root: Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    sizes = [(375, 500), (500, 375), (333, 500), (600, 800)]
    for index in range(count):
        height, width = sizes[index % len(sizes)]
        folder = root / "train" / f"n{index % 8:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo_like(height, width, rng)).save(
            folder / f"n{index % 8:08d}_{index}.JPEG", quality=(75, 90)[index % 2], subsampling=(2, 2, 0)[index % 3])


def load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def run_queue_seconds() -> float:
    """Seconds this process has spent runnable but waiting for a CPU (Linux schedstat; 0 elsewhere)."""
    try:
        with open("/proc/self/schedstat") as handle:
            return int(handle.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def interleaved(arms: dict[str, callable], rounds: int) -> tuple[dict, dict, dict]:
    """Wall seconds, CPU seconds and this process's run-queue wait of each arm per round,
    alternating which arm runs first."""
    names = list(arms)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    waiting: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            start, start_cpu, start_wait = time.perf_counter(), cpu_seconds(), run_queue_seconds()
            arms[name](round_index)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(cpu_seconds() - start_cpu)
            waiting[name].append(run_queue_seconds() - start_wait)
    return times, cpu, waiting


def report(title: str, files: int, measured: tuple[dict, dict, dict]) -> None:
    """Median files/s per arm, the ratio to the first arm, the cores the arm got (CPU s / wall s)
    and the share of wall time this process waited for a CPU."""
    times, cpu, waiting = measured
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = next(iter(medians))
    print(f"{title}: {files} files per round, median of {len(next(iter(times.values())))} rounds")
    for name, seconds in medians.items():
        rates = ", ".join(f"{files / value:.1f}" for value in times[name])
        cores = sum(cpu[name]) / sum(times[name])
        queued = 100 * sum(waiting[name]) / sum(times[name])
        print(f"  {name:>10}: {files / seconds:7.1f} files/s  {medians[base] / seconds:.2f}x  "
              f"({seconds:.2f} s; {cores:.2f} cores busy; main process waited for a CPU {queued:.0f}% of the time; "
              f"rounds: {rates} files/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128, help="files per resize round")
    parser.add_argument("--cache-images", type=int, default=256, help="files per cache round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-cache", action="store_true", help="measure resize only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as temporary:
        root = Path(temporary)
        make_corpus(root / "resize-src", args.images)
        settings = ResizeSettings(size=256)

        def resize(workers):
            def run(round_index):
                output = root / f"resized-{workers}-{round_index}"
                resize_tree(root / "resize-src", output, settings, workers=workers)
                shutil.rmtree(output)
            return run

        resize(1)(-1)  # warm the page cache and imports
        print(f"{os.cpu_count()} CPUs; {load()}")
        times = interleaved({"1 worker": resize(1), "2 workers": resize(2)}, args.rounds)
        report("resize to 256 (quality keep)", args.images, times)
        print(f"  {load()}")
        if args.skip_cache:
            return
        make_corpus(root / "cache-src", args.cache_images, seed=1)
        samples = image_folder(root / "cache-src" / "train")

        def cache(workers):
            def run(round_index):
                folder = root / f"cache-{workers}-{round_index}"
                reencoded_samples(samples, 50, "pixel", cache_dir=folder, workers=workers)
                shutil.rmtree(folder)
            return run

        cache(0)(-1)  # compile and load the Numba kernels once
        times = interleaved({"1 worker": cache(0), "2 workers": cache(2)}, args.rounds)
        report("re-encoded cache at q50 (pixel)", len(samples), times)
        print(f"  {load()}")


if __name__ == "__main__":
    main()
