"""Data-loading throughput at training settings: DCTLoader against RGB pipelines and the decoder.

An ImageNet-like folder is generated first (photo-like 500x375 images from
``bench_decode.photo_like``, 4:2:0 at quality 90, ten class folders; nothing is downloaded).
Every arm then delivers training batches of 64 random 224x224 crops with random horizontal
flips, normalised, as float32 tensors on the CPU:

* ``decoder``     the bare coefficient decoder (``read_coefficients`` per file; workers > 0
  run it in the same EpochLoader machinery as the loaders, returning nothing);
* ``dct``         ``DCTLoader`` per-sample path (``device=None``): workers decode, crop, flip,
  dequantize and lay out each sample;
* ``dct-batch``   ``DCTLoader(device="cpu")``: workers decode, crop, flip and pack int16
  coefficients; one batched Numba call per batch in the main process makes the inputs;
* ``rgb``         ``RGBLoader``: the same crops decoded to pixels by cdomain;
* ``pillow``      a torchvision-style pipeline: Pillow decode, RandomResizedCrop(224) +
  horizontal flip + to-tensor + normalise (torchvision's transforms when installed, otherwise
  the same steps written with Pillow and torch);
* ``simplejpeg``  the same with simplejpeg (libjpeg-turbo) decoding, when installed.

Each arm runs at 0, 1 and 2 workers (persistent workers, one warm-up epoch). Epochs are timed in
interleaved rounds: every (arm, workers) pair once per round, the order rotating. The median
images/s is reported, and every ratio (against the best RGB pipeline and against the decoder at
equal workers, workers 2 against 0) is the median over rounds of the ratio within one round.
The load average is printed before and after: on a shared machine the figures move with it.

    python benchmarks/bench_loader.py [--quick] [--images 640] [--rounds 5] [--fbs 16]

Targets (CPU): DCTLoader at workers 0 >= 85% of the decoder's images/s; >= 3x the best RGB
pipeline at equal workers; workers 2 vs 0 >= 1.7x on a quiet machine. The bare decoder's own
workers 2 vs 0 is printed beside the last: it shows how much of a second core the run got.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_decode import photo_like  # noqa: E402

from cdomain.cli.errors import non_negative_int, positive_int  # noqa: E402
from cdomain.data.dct_transforms import ChannelStats, SampleRandom  # noqa: E402
from cdomain.data.folder import image_folder  # noqa: E402
from cdomain.data.loader import DCTLoader, EpochLoader, RGBLoader, SampleDataset  # noqa: E402
from cdomain.jpeg.reader import read_coefficients  # noqa: E402

CROP = 224
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
RGB_ARMS = ("rgb", "pillow", "simplejpeg")
DCT_ARMS = ("dct", "dct-batch")


def make_folder(root: Path, count: int, classes: int = 10, seed: int = 0) -> Path:
    """``count`` photo-like 500x375 JPEGs (4:2:0, quality 90) in ``classes`` class folders."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        folder = root / f"class{index % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = photo_like(375, 500, rng)
        Image.fromarray(pixels).save(folder / f"{index:05d}.jpg", quality=90, subsampling="4:2:0")
    return root


class DecodeOnly(SampleDataset):
    """Reads each file's coefficients and hands nothing on: the decoder inside the loader."""

    def __init__(self, samples) -> None:
        self.samples = samples

    def load(self, index: int):
        read_coefficients(self.samples.paths[index])
        return 0, 0

    def collate(self, items):
        return len(items), None


class PillowPipeline(SampleDataset):
    """torchvision's ImageNet training transform: RandomResizedCrop(crop), RandomHorizontalFlip,
    ToTensor, Normalize; decoded by Pillow or simplejpeg."""

    def __init__(self, samples, decoder: str, seed: int = 0, crop: int = CROP) -> None:
        self.samples, self.decoder, self.seed, self.crop = samples, decoder, seed, crop
        self.mean = torch.from_numpy(MEAN)[:, None, None]
        self.std = torch.from_numpy(STD)[:, None, None]
        try:
            from torchvision import transforms
        except ImportError:
            self.torchvision = None
        else:
            self.torchvision = transforms.Compose([
                transforms.RandomResizedCrop(crop), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                transforms.Normalize(MEAN.tolist(), STD.tolist()),
            ])

    def _open(self, path: str) -> Image.Image:
        if self.decoder == "simplejpeg":
            import simplejpeg

            with open(path, "rb") as handle:
                return Image.fromarray(simplejpeg.decode_jpeg(handle.read(), colorspace="RGB"))
        with Image.open(path) as image:
            return image.convert("RGB")

    def load(self, index: int):
        image = self._open(self.samples.paths[index])
        label = self.samples.labels[index]
        if self.torchvision is not None:
            return self.torchvision(image), label
        rng = SampleRandom(self.seed, self.epoch, index)
        box = random_resized_box(image.width, image.height, rng)
        image = image.resize((self.crop, self.crop), Image.BILINEAR, box=box)
        if rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div_(255.0)
        return tensor.sub_(self.mean).div_(self.std), label


def random_resized_box(width: int, height: int, rng: SampleRandom) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params (scale 0.08..1, ratio 3/4..4/3, 10 tries,
    then the centre crop at the nearest allowed ratio), as a Pillow ``box``."""
    area = width * height
    for _ in range(10):
        target = area * (0.08 + rng.random() * 0.92)
        ratio = math.exp(math.log(3 / 4) + rng.random() * (math.log(4 / 3) - math.log(3 / 4)))
        w = int(round(math.sqrt(target * ratio)))
        h = int(round(math.sqrt(target / ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = rng.integers(0, height - h + 1)
            left = rng.integers(0, width - w + 1)
            return left, top, left + w, top + h
    ratio = width / height
    w, h = (width, int(round(width / (4 / 3)))) if ratio > 4 / 3 else (
        (int(round(height * 3 / 4)), height) if ratio < 3 / 4 else (width, height))
    return (width - w) // 2, (height - h) // 2, (width - w) // 2 + w, (height - h) // 2 + h


def simplejpeg_available() -> bool:
    try:
        import simplejpeg  # noqa: F401
    except ImportError:
        return False
    return True


def build(arm: str, root: Path, workers: int, batch: int, fbs: int) -> Any:
    """The loader of ``arm`` at ``workers`` (an iterable of batches; one pass = one epoch)."""
    samples = image_folder(root)
    common = dict(batch_size=batch, crop=CROP, augment=True, seed=0, workers=workers)
    if arm == "decoder":
        if workers == 0:
            return PlainDecode(samples.paths)
        return EpochLoader(DecodeOnly(samples), batch_size=batch, shuffle=True, workers=workers)
    if arm in DCT_ARMS:
        stats = ChannelStats(np.zeros(3 * fbs), np.full(3 * fbs, 16.0))
        return DCTLoader(samples, fbs=fbs, stats=stats, device="cpu" if arm == "dct-batch" else None, **common)
    if arm == "rgb":
        return RGBLoader(samples, stats=ChannelStats(MEAN * 255, STD * 255), **common)
    dataset = PillowPipeline(samples, "simplejpeg" if arm == "simplejpeg" else "pillow")
    return EpochLoader(dataset, batch_size=batch, shuffle=True, workers=workers)


class PlainDecode:
    """The decoder alone in a loop over the files (workers 0)."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __iter__(self):
        for path in self.paths:
            read_coefficients(path)
        return iter(())


def epoch_seconds(loader: Any) -> float:
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def measure(arms: list[str], root: Path, count: int, workers: list[int], rounds: int, batch: int, fbs: int,
            log: Callable[[str], None]) -> dict[str, dict[int, list[float]]]:
    """images/s per arm and worker count, every (arm, workers) pair interleaved within each round.

    All loaders exist at once (idle persistent workers sleep on their queues), so a ratio such
    as workers 2 against workers 0 compares epochs seconds apart, not phases minutes apart.
    """
    pairs = [(arm, w) for w in workers for arm in arms]
    loaders = {pair: build(pair[0], root, pair[1], batch, fbs) for pair in pairs}
    for loader in loaders.values():  # warm-up: worker start, compilation, file cache
        epoch_seconds(loader)
    results: dict[str, dict[int, list[float]]] = {arm: {w: [] for w in workers} for arm in arms}
    for r in range(rounds):
        order = pairs[r % len(pairs):] + pairs[: r % len(pairs)]
        for arm, w in order:
            results[arm][w].append(count / epoch_seconds(loaders[arm, w]))
        log(f"  round {r + 1}/{rounds} done")
    del loaders
    gc.collect()
    return results


def paired(results: dict[str, dict[int, list[float]]], top: tuple[str, int], bottom: Callable[[int], float]) -> float:
    """Median over rounds of ``top``'s images/s divided by ``bottom(round)``: a ratio taken
    within each round, robust to the machine's load drifting between rounds."""
    arm, w = top
    return statistics.median(value / bottom(r) for r, value in enumerate(results[arm][w]))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="128 images, 3 rounds (about a minute on a quiet machine)")
    parser.add_argument("--images", type=positive_int, default=640)
    parser.add_argument("--rounds", type=positive_int, default=5)
    parser.add_argument("--batch", type=positive_int, default=64)
    parser.add_argument("--fbs", type=positive_int, default=16, help="1..64")
    parser.add_argument("--workers", type=non_negative_int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.fbs > 64:
        parser.error(f"argument --fbs: must be in 1..64, got {args.fbs}")
    if args.quick:
        args.images, args.rounds = 128, 3
    # One torch thread, as in DataLoader workers: the Pillow arm's per-image tensor ops would
    # otherwise fan out into threads that spin against the other processes on a shared machine.
    torch.set_num_threads(1)
    arms = ["decoder", *DCT_ARMS, "rgb", "pillow"] + (["simplejpeg"] if simplejpeg_available() else [])
    load_before = os.getloadavg()
    print(f"load average before the run: {', '.join(f'{x:.2f}' for x in load_before)} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        root = make_folder(Path(tmp) / "imagenet-like", args.images)
        print(f"{args.images} images 500x375 (4:2:0, q90); crops {CROP}x{CROP}, batch {args.batch}, fbs {args.fbs}; "
              f"{args.rounds} interleaved rounds; arms: {', '.join(arms)}")
        results = measure(arms, root, args.images, args.workers, args.rounds, args.batch, args.fbs,
                          lambda line: print(line, flush=True))
    load_after = os.getloadavg()
    median = {arm: {w: statistics.median(v) for w, v in per.items()} for arm, per in results.items()}

    print(f"\nimages/s (median of {args.rounds}; min..max)")
    print(f"{'arm':<12}" + "".join(f"{'workers ' + str(w):>24}" for w in args.workers))
    for arm in arms:
        cells = [f"{median[arm][w]:8.0f} ({min(results[arm][w]):.0f}..{max(results[arm][w]):.0f})" for w in args.workers]
        print(f"{arm:<12}" + "".join(f"{c:>24}" for c in cells))
    rgb_arms = [a for a in arms if a in RGB_ARMS]

    def best_rgb(w: int) -> Callable[[int], float]:
        return lambda r: max(results[a][w][r] for a in rgb_arms)

    def decoder(w: int) -> Callable[[int], float]:
        return lambda r: results["decoder"][w][r]

    print("\nratios at equal workers, each the median over rounds of the ratio within a round:"
          "\nvs the best RGB pipeline / vs the decoder")
    for arm in arms:
        cells = [f"{paired(results, (arm, w), best_rgb(w)):5.2f}x / {paired(results, (arm, w), decoder(w)):4.0%}"
                 for w in args.workers]
        print(f"{arm:<12}" + "".join(f"{c:>24}" for c in cells))

    checks = {}
    dct = {w: max(DCT_ARMS, key=lambda a: median[a][w]) for w in args.workers}  # the faster DCT path
    if 0 in args.workers:
        checks["dct_vs_decoder_w0"] = paired(results, (dct[0], 0), decoder(0))
        print(f"\nDCTLoader ({dct[0]}) at workers 0: {checks['dct_vs_decoder_w0']:.0%} of the decoder (target >= 85%)")
    for w in args.workers:
        checks[f"dct_vs_best_rgb_w{w}"] = paired(results, (dct[w], w), best_rgb(w))
        print(f"DCTLoader ({dct[w]}) vs best RGB pipeline at workers {w}: {checks[f'dct_vs_best_rgb_w{w}']:.2f}x "
              "(target >= 3x)")
    if 0 in args.workers and 2 in args.workers:
        for arm in DCT_ARMS:
            checks[f"{arm}_w2_vs_w0"] = paired(results, (arm, 2), lambda r, arm=arm: results[arm][0][r])
            print(f"{arm} workers 2 vs 0: {checks[f'{arm}_w2_vs_w0']:.2f}x (target >= 1.7x on a quiet machine)")
        # The bare decoder's own scaling: what the machine gave two processes in this run.
        checks["decoder_w2_vs_w0"] = paired(results, ("decoder", 2), decoder(0))
        print(f"decoder workers 2 vs 0: {checks['decoder_w2_vs_w0']:.2f}x (no target: the cores this run got; "
              "a neighbour's load lowers it)")
    print(f"load average after the run: {', '.join(f'{x:.2f}' for x in load_after)}")
    report = {"images": args.images, "rounds": args.rounds, "batch": args.batch, "fbs": args.fbs, "crop": CROP,
              "images_per_s": median, "all": results, "checks": checks,
              "load_before": load_before, "load_after": load_after, "cpus": os.cpu_count()}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()
