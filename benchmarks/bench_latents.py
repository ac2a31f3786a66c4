"""Latent throughput: ``(y_hat, sigma_hat)`` straight from bitstreams vs a full decode vs encoding pixels.

The learned-codec counterpart of ``bench_decode.py``. Three ways to get a task network's input
for the same images, each from a file on disk:

* ``bitstream``  ``read_latents(file, codec)``: entropy-decode z, ``h_s`` for the scales,
  entropy-decode y -- no synthesis transform (what ``LatentLoader`` does with a bitstream folder);
* ``decode``     the full decoder: the same entropy decoding, then ``g_s`` to RGB pixels (clamped
  and cropped, as CompressAI's ``decompress``), which a pixel-domain network would start from;
  the ratio bitstream / decode is therefore the cost of ``g_s`` alone;
* ``decode-compressai``  (reference) the same full decode through CompressAI's own
  ``decompress``, which converts the whole coder table to Python lists for every image;
* ``encode``     today's latent path from images: decode the JPEG to pixels, then ``g_a``,
  ``h_a``, ``h_s`` and quantisation (``encode``), as ``cdomain-prepare latents`` does.

The bitstream files are written once (``compress_samples``) from the JPEG files of ``--data``'s
validation split. Each round times one pass over all images per arm, the arms' order rotating
from round to round (interleaved); the median images/s over the rounds is reported per arm with
the ratios of ``bitstream`` to the two others. The machine load (``os.getloadavg()``) is printed
before and after.

    python benchmarks/bench_latents.py [--codec FILE | --codec zoo:Q] [--data textures] [--images 64]
                                       [--rounds 7] [--threads 1]

``--codec`` defaults to the small trained test codec (N=16, M=24). ``zoo:Q`` builds CompressAI's
architecture for quality Q at its published size (e.g. N=128, M=192), *untrained*: its timings are
those of a real-size network, its bitstreams are not those of a trained codec.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TEST_CODEC = ROOT / "tests" / "latents" / "data" / "codec-n16-m24.safetensors"


def load(spec: str) -> tuple[torch.nn.Module, str]:
    from cdomain.latents.codecs import build_codec, load_codec, refresh_entropy_tables

    if spec.startswith("zoo:"):
        quality = int(spec[4:])
        codec = build_codec("bmshj2018-hyperprior", quality).eval()
        refresh_entropy_tables(codec)
        return codec, f"bmshj2018-hyperprior quality {quality}, zoo size N={codec.N} M={codec.M}, untrained"
    codec = load_codec(spec)
    return codec, f"{spec} (N={codec.N}, M={codec.M})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--codec", default=str(TEST_CODEC), help="codec file, or zoo:Q (untrained, published size)")
    parser.add_argument("--data", default="textures", help="embedded dataset name or folder (its val split is used)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: as in a loader worker)")
    args = parser.parse_args(argv)

    from cdomain.data.folder import SampleList
    from cdomain.data.registry import open_dataset
    from cdomain.latents.bitstream import codec_key, read_bitstream, read_latents
    from cdomain.latents.compress import compress_samples
    from cdomain.latents.encode import crop_padding, decompress, encode
    from cdomain.latents.images import load_rgb

    torch.set_num_threads(args.threads)
    codec, description = load(args.codec)
    key = codec_key(codec)
    splits = open_dataset(args.data, "classification", require_splits=False).splits
    samples = splits.get("val") or next(iter(splits.values()))
    count = min(args.images, len(samples))
    samples = SampleList(samples.paths[:count], samples.labels[:count], samples.classes)
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as folder:
        summary = compress_samples(codec, samples, folder, progress=False)
        files = sorted(Path(folder).rglob("*.cdlb"))
        jpegs = list(samples.paths)

        def from_bitstreams() -> None:
            for path in files:
                read_latents(path, codec, key=key)

        def full_decode() -> None:
            with torch.no_grad():
                for path in files:
                    bitstream = read_bitstream(path)
                    y_hat, _ = read_latents(bitstream, codec, key=key)
                    crop_padding(codec.g_s(y_hat).clamp_(0, 1), bitstream.padding)

        def compressai_decode() -> None:
            with torch.no_grad():
                for path in files:
                    decompress(codec, read_bitstream(path).compressed())

        def from_pixels() -> None:
            for path in jpegs:
                encode(codec, load_rgb(path)[None])

        arms = {"bitstream": from_bitstreams, "decode": full_decode, "encode": from_pixels,
                "decode-compressai": compressai_decode}
        for run in arms.values():  # warm-up
            run()
        rates: dict[str, list[float]] = {name: [] for name in arms}
        names = list(arms)
        for round_ in range(args.rounds):
            order = names[round_ % len(names):] + names[: round_ % len(names)]
            for name in order:
                start = time.perf_counter()
                arms[name]()
                rates[name].append(count / (time.perf_counter() - start))
            print(f"  round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    load_after = os.getloadavg()

    height, width = load_rgb(samples.paths[0]).shape[-2:]
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"codec: {description}")
    print(f"data: {count} images of {args.data} (first {height}x{width}), real {summary['bpp']:.3f} bpp "
          f"({summary['bytes'] / count:.0f} bytes per file); torch threads {args.threads}; {args.rounds} rounds")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} ({os.cpu_count()} CPUs)")
    for name in names:
        values = rates[name]
        print(f"  {name:>17}: {median[name]:8.1f} images/s (median; min {min(values):.1f}, max {max(values):.1f})")
    print(f"ratio bitstream / decode (latents vs full decode through g_s): {median['bitstream'] / median['decode']:.2f}x")
    print(f"ratio bitstream / encode (latents vs encoding from pixels):    {median['bitstream'] / median['encode']:.2f}x")
    print(f"ratio bitstream / decode-compressai (vs CompressAI's decompress): "
          f"{median['bitstream'] / median['decode-compressai']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
