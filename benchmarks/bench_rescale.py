"""DCT-domain downscaling against the pixel route, from JPEG bytes to coefficients of the smaller image.

Arms (each from the same in-memory JPEG files to int16 coefficient blocks, per component, of
the image downscaled by ``f``):

* ``dct``: ``read_coefficients`` -> ``downscale_image`` (``kernels.downscale_blocks`` per
  component, requantized with the file's tables), the exact area filter; ``dct-lowpass`` the
  same with Dugad & Ahuja's low-pass approximation (reads 1/f^2 of the coefficients).
* ``pixel``: Pillow decode to RGB -> ``Image.reduce(f)`` (area / box filter) -> the kernels'
  RGB-to-YCbCr, a 2x2 chroma average for 4:2:0, and ``blocks_from_samples`` (forward DCT and
  quantization with the file's tables). The cheapest pixel route to the same output.
* ``pixel+jpeg``: Pillow decode -> ``reduce`` -> Pillow encode at the file's quality ->
  ``read_coefficients``: what re-encoding a resized file costs.

Arms alternate within every round (interleaved), each round times every image once per arm;
the figures are medians over rounds of wall-clock time and of the calling thread's CPU time
(every arm runs in one thread; CPU time moves far less with other load on the machine), with the
machine's load average printed. Photo-like
4:2:0 images at quality 90.

    python benchmarks/bench_rescale.py [--size 512x384] [--images 16] [--rounds 7] [--factor 2 4]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdomain import kernels, read_coefficients  # noqa: E402
from cdomain.data.dct_transforms import downscale_image  # noqa: E402
from tests.helpers import encode, photo_like  # noqa: E402


def dct_route(data: bytes, factor: int, method: str = "area") -> tuple[np.ndarray, ...]:
    return downscale_image(read_coefficients(data), factor, method).coefficients


def pixel_route(data: bytes, factor: int, tables: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").reduce(factor))
    y, cb, cr = kernels.rgb_to_ycbcr(rgb)
    h, w = cb.shape
    chroma = []
    for plane in (cb, cr):  # 4:2:0: average 2x2 (edge-replicated to even size)
        padded = np.pad(plane, ((0, h % 2), (0, w % 2)), mode="edge").astype(np.uint16)
        summed = padded[0::2, 0::2] + padded[1::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 1::2]
        chroma.append(((summed + 2) // 4).astype(np.uint8))
    planes = (y, *chroma)
    return tuple(kernels.blocks_from_samples(p, t) for p, t in zip(planes, tables))


def reencode_route(data: bytes, factor: int, quality: int) -> tuple[np.ndarray, ...]:
    image = Image.open(io.BytesIO(data)).convert("RGB").reduce(factor)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, subsampling=2)
    return read_coefficients(buffer.getvalue()).coefficients


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512x384", help="WIDTHxHEIGHT of the test images (default 512x384)")
    parser.add_argument("--images", type=int, default=16, help="images per round (default 16)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--factor", type=int, nargs="+", default=[2, 4], choices=[2, 4], help="downscale factors")
    parser.add_argument("--quality", type=int, default=90, help="IJG quality of the test files (default 90)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    files = [encode(photo_like(height, width, seed=i), args.quality, subsampling=2) for i in range(args.images)]
    tables = read_coefficients(files[0]).quant_tables
    print(f"{args.images} photo-like {width}x{height} 4:2:0 q{args.quality} images, {args.rounds} rounds, "
          f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    arms = {
        "dct": lambda data, f: dct_route(data, f),
        "dct-lowpass": lambda data, f: dct_route(data, f, "lowpass"),
        "pixel": lambda data, f: pixel_route(data, f, tables),
        "pixel+jpeg": lambda data, f: reencode_route(data, f, args.quality),
    }
    for factor in args.factor:
        for arm in arms.values():  # warm-up: Numba compilation, caches
            for data in files[:2]:
                arm(data, factor)
        shapes = {name: [c.shape for c in arm(files[0], factor)] for name, arm in arms.items()}
        assert all(shape == shapes["dct"] for shape in shapes.values()), shapes
        times: dict[str, list[float]] = {name: [] for name in arms}
        cpu: dict[str, list[float]] = {name: [] for name in arms}
        for _ in range(args.rounds):
            for name, arm in arms.items():
                start, start_cpu = time.perf_counter(), time.thread_time()
                for data in files:
                    arm(data, factor)
                times[name].append((time.perf_counter() - start) / len(files))
                cpu[name].append((time.thread_time() - start_cpu) / len(files))
        median = {name: statistics.median(values) for name, values in times.items()}
        median_cpu = {name: statistics.median(values) for name, values in cpu.items()}
        print(f"factor {factor}, wall: " + ", ".join(f"{name} {median[name] * 1000:.2f}" for name in arms)
              + " ms/image")
        print(f"factor {factor}, thread CPU: " + ", ".join(f"{name} {median_cpu[name] * 1000:.2f}" for name in arms)
              + " ms/image")
        for arm in ("dct", "dct-lowpass"):
            print(f"  {arm} route: {median['pixel'] / median[arm]:.2f}x the pixel route, "
                  f"{median['pixel+jpeg'] / median[arm]:.2f}x the re-encoding route (wall); "
                  f"{median_cpu['pixel'] / median_cpu[arm]:.2f}x, {median_cpu['pixel+jpeg'] / median_cpu[arm]:.2f}x "
                  f"(thread CPU); medians of {args.rounds} rounds")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
