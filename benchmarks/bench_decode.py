"""JPEG decode throughput: cdomain's native coefficient decoder vs jpeglib and Pillow.

Four ways to get something out of the same files, all starting from a path:

* ``cdomain``  ``read_coefficients(path)``: quantized DCT coefficients (native Numba decoder);
* ``jpeglib``  ``jpeglib.read_dct(path)``: the same coefficients through libjpeg;
* ``pil``      Pillow's full decode to RGB pixels (libjpeg-turbo: entropy decode, IDCT,
  upsampling, colour conversion);
* ``draft``    Pillow's 1/8-scale decode (``draft("RGB", (w // 8, h // 8))``): full entropy
  decoding but only a DC-only IDCT, so close to the cost of entropy decoding alone.

The corpus is generated: photo-like images (smooth multi-scale content, texture, edges and
sensor-like noise), about 500x375 and 1000x700, 4:2:0 at quality 75 and 95, a quarter of them
progressive. Methods are timed in interleaved passes over the whole corpus and each file's best
time is kept, the figure least disturbed by other load on the machine; totals and per-group
ratios (sequential q75, sequential q95, progressive) are printed. A last section decodes the
file list with 1 and 2 threads (``ThreadPoolExecutor``; the decoder releases the GIL), next to
the same measurement for a trivially parallel compiled loop: the most two threads can gain on
the machine at that moment (other processes share the cores).

    python benchmarks/bench_decode.py [--images 32] [--passes 7] [--compile-time]

``--compile-time`` also measures the first call in fresh processes: with an empty on-disk Numba
cache (compilation) and again with the cache filled.

Targets (2 CPU cores): cdomain >= 3x jpeglib, >= 1.5x Pillow full decode, >= 0.8x Pillow's 1/8
draft decode; 2 threads >= 1.7x one thread.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile


def photo_like(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A uint8 RGB image with the statistics of a photo: 1/f-like smooth content, a few sharp
    edges, fine texture and noise (pure noise would make every coefficient nonzero)."""
    image = np.zeros((height, width, 3))
    for octave in range(6):
        scale = 2**octave * 4
        grid = rng.normal(0.0, 1.0, (height // scale + 2, width // scale + 2, 3))
        grid = ((grid - grid.min()) / (np.ptp(grid) + 1e-9) * 255).astype(np.uint8)
        layer = np.asarray(Image.fromarray(grid).resize((width, height), Image.BICUBIC), float)
        image += layer * 0.6 ** (5 - octave)
    image = (image - image.min()) / (np.ptp(image) + 1e-9) * 200 + 20
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(4):  # hard-edged shapes
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(20, height / 3)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        image[mask] = image[mask] * 0.5 + rng.uniform(0, 255, 3) * 0.5
    image += rng.normal(0.0, 3.0, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_corpus(directory: Path, count: int, seed: int = 0) -> list[Path]:
    """Write ``count`` JPEGs: size, quality and mode cycle independently (size fastest), so
    each block of 16 files holds every size x quality pair three times sequential and once
    progressive."""
    ImageFile.MAXBLOCK = 1 << 25
    rng = np.random.default_rng(seed)
    sizes = [(375, 500), (700, 1000)]
    qualities = [75, 95]
    paths = []
    for i in range(count):
        height, width = sizes[i % 2]
        quality = qualities[(i // 2) % 2]
        progressive = (i // 4) % 4 == 3
        jitter = int(rng.integers(-8, 9))
        pixels = photo_like(height + jitter, width - jitter, rng)
        path = directory / f"{i:03d}_q{quality}{'_prog' if progressive else ''}.jpg"
        Image.fromarray(pixels).save(path, quality=quality, subsampling="4:2:0",
                                     progressive=progressive)
        paths.append(path)
    return paths


def decode_cdomain(path: Path) -> object:
    from cdomain.jpeg.reader import read_coefficients

    return read_coefficients(path)


def decode_jpeglib(path: Path) -> object:
    import jpeglib

    return jpeglib.read_dct(str(path)).Y


def decode_pil(path: Path) -> object:
    with Image.open(path) as image:
        image.load()
        return image.size


def decode_draft(path: Path) -> object:
    with Image.open(path) as image:
        image.draft("RGB", (image.width // 8, image.height // 8))
        image.load()
        return image.size


METHODS = {"cdomain": decode_cdomain, "jpeglib": decode_jpeglib, "pil": decode_pil,
           "draft": decode_draft}


def time_files(paths: list[Path], passes: int) -> dict[str, list[float]]:
    """Best seconds per file for each method, methods interleaved file by file."""
    for fn in METHODS.values():  # warm-up: compilation, file cache
        for path in paths:
            fn(path)
    best = {name: [float("inf")] * len(paths) for name in METHODS}
    for index in range(passes):
        for i, path in enumerate(paths):
            for name, fn in METHODS.items():
                start = time.perf_counter()
                fn(path)
                best[name][i] = min(best[name][i], time.perf_counter() - start)
        print(f"  pass {index + 1}/{passes} done", file=sys.stderr)
    return best


def _two_threads(fn, work: list, passes: int) -> float:
    """Best ratio of (1 thread time) / (2 threads time) for ``fn`` over ``work``."""
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(fn, work))
        one = two = float("inf")
        for _ in range(passes):
            start = time.perf_counter()
            for item in work:
                fn(item)
            one = min(one, time.perf_counter() - start)
            start = time.perf_counter()
            list(pool.map(fn, work))
            two = min(two, time.perf_counter() - start)
    return one / two


def time_threads(paths: list[Path], passes: int) -> tuple[float, float]:
    """Two-thread speed-up of cdomain over the file list, and of a trivially parallel
    compiled loop of similar length (the machine's ceiling at that moment)."""
    from numba import njit

    @njit(nogil=True)
    def spin(count):
        total = 0
        for i in range(count):
            total = (total * 31 + i) & 0xFFFFFFF
        return total

    work = paths * 2
    start = time.perf_counter()
    for path in work:
        decode_cdomain(path)
    per_item = (time.perf_counter() - start) / len(work)
    spin(1000)
    start = time.perf_counter()
    spin(1_000_000)
    loops = max(1000, int(per_item / (time.perf_counter() - start) * 1_000_000))
    return (_two_threads(decode_cdomain, work, passes),
            _two_threads(spin, [loops] * len(work), passes))


_FIRST_CALL = """
import sys, time
start = time.perf_counter()
from cdomain.jpeg.reader import read_coefficients
imported = time.perf_counter()
read_coefficients(sys.argv[1])
done = time.perf_counter()
print(f"{imported - start:.3f} {done - imported:.3f}")
"""


def first_call_times(path: Path) -> list[tuple[str, float, float]]:
    """(label, import seconds, first-decode seconds) in fresh processes, cold then cached."""
    results = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("empty cache (compile)", "cache filled"):
            out = subprocess.run([sys.executable, "-c", _FIRST_CALL, str(path)], env=env,
                                 check=True, capture_output=True, text=True).stdout.split()
            results.append((label, float(out[0]), float(out[1])))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="files in the generated corpus")
    parser.add_argument("--passes", type=int, default=7, help="timed passes per method")
    parser.add_argument("--compile-time", action="store_true",
                        help="also time the first call in fresh processes (cold/warm cache)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        print(f"generating {args.images} photo-like JPEGs ...", file=sys.stderr)
        paths = make_corpus(Path(tmp), args.images)
        pixels = 0
        for path in paths:
            with Image.open(path) as image:
                pixels += image.width * image.height
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        print(f"corpus: {len(paths)} files, {pixels / len(paths) / 1e3:.0f} kpx and "
              f"{megabytes * 1e3 / len(paths):.0f} kB per image on average "
              f"(4:2:0, q75/q95, {sum('_prog' in p.name for p in paths)} progressive)")
        best = time_files(paths, args.passes)
        names = [path.name for path in paths]
        groups = {
            "all": list(range(len(paths))),
            "sequential q75": [i for i, n in enumerate(names) if "q75" in n and "_prog" not in n],
            "sequential q95": [i for i, n in enumerate(names) if "q95" in n and "_prog" not in n],
            "progressive": [i for i, n in enumerate(names) if "_prog" in n],
        }
        total = {name: sum(times) for name, times in best.items()}
        print(f"\n{'method':10s} {'ms/image':>9s} {'Mpx/s':>8s}")
        for name, seconds in total.items():
            print(f"{name:10s} {seconds / len(paths) * 1e3:9.3f} {pixels / seconds / 1e6:8.1f}")
        print("\ncdomain speed-up (higher is better; targets in the last row):")
        print(f"  {'files':16s} {'vs jpeglib':>11s} {'vs Pillow RGB':>14s} {'vs Pillow 1/8':>14s}")
        for label, members in groups.items():
            ours = sum(best["cdomain"][i] for i in members)
            ratios = [sum(best[name][i] for i in members) / ours
                      for name in ("jpeglib", "pil", "draft")]
            print(f"  {label:16s} {ratios[0]:10.2f}x {ratios[1]:13.2f}x {ratios[2]:13.2f}x")
        print(f"  {'target':16s} {'>= 3.0':>11s} {'>= 1.5':>14s} {'>= 0.8':>14s}")
        decoder, ceiling = time_threads(paths, args.passes)
        print(f"\n2 threads vs 1 (file list, ThreadPoolExecutor): {decoder:.2f}x  [>= 1.7]; "
              f"a trivially parallel compiled loop on this machine now: {ceiling:.2f}x")
        if args.compile_time:
            print("\nfirst call in a fresh process (import / first decode):")
            for label, imported, first in first_call_times(paths[0]):
                print(f"  {label:22s} import {imported:6.2f} s   first decode {first:6.2f} s")


if __name__ == "__main__":
    main()
