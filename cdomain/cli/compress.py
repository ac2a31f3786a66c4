"""``cdomain-prepare compress``: a data set as learned-codec bitstream files (one per image).

::

    cdomain-prepare compress --codec codec.safetensors --data textures --output bitstreams/ [--workers 4]

Writes ``OUTPUT/<split>/<class>/<stem>.cdlb`` for a data set with train/ and val/ splits (an
embedded name or such a folder), ``OUTPUT/<class>/<stem>.cdlb`` for a plain ImageFolder tree,
then prints per split the files, bytes and real bits per pixel. Rerun with the same arguments
after an interruption to continue (complete files are kept). The work is
:func:`cdomain.latents.compress.compress_samples`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cdomain.errors import ConfigError, RunFolderError


def add_compress_parser(commands) -> argparse.ArgumentParser:
    """Register ``compress`` on ``cdomain-prepare``'s sub-command parsers."""
    parser = commands.add_parser("compress", help="write a data set as learned-codec bitstream files (one per image)",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--codec", type=Path, required=True,
                        help="codec file (.safetensors from 'codec', or CompressAI .pth.tar)")
    parser.add_argument("--data", default="textures", help="embedded dataset name or an image folder")
    parser.add_argument("--output", type=Path, required=True,
                        help="bitstream folder (OUTPUT/<split>/<class>/<image>.cdlb); rerun to continue")
    parser.add_argument("--splits", default=None, help="comma-separated splits (default: train,val where present)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (0: encode in this process)")
    parser.add_argument("--overwrite", action="store_true", help="replace bitstreams that another codec wrote")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def run_compress(args: argparse.Namespace) -> dict:
    from cdomain.cli.prepare import resolve_data
    from cdomain.latents.codecs import load_codec
    from cdomain.latents.compress import compress_samples

    if args.workers < 0:
        raise ConfigError("--workers", f"must be >= 0, got {args.workers}")
    if args.output.exists() and not args.output.is_dir():
        raise RunFolderError(f"--output {args.output}: exists and is not a folder")
    splits = resolve_data(args.data, args.splits)
    codec = load_codec(args.codec)
    config = codec.cdomain_config
    print(f"codec {args.codec}: {config['architecture']} quality {config.get('quality')} N={codec.N} M={codec.M}",
          flush=True)
    progress = not args.quiet and sys.stderr.isatty()
    start = time.perf_counter()
    results = {}
    for split, samples in splits.items():
        directory = args.output / split if split != "data" else args.output
        summary = compress_samples(codec, samples, directory, workers=args.workers, overwrite=args.overwrite,
                                   progress=progress, desc=f"compress {split}")
        print(f"{split}: {summary['files']} files ({summary['written']} written, {summary['kept']} already complete), "
              f"{summary['bytes']} bytes, real {summary['bpp']:.4f} bpp; {directory}", flush=True)
        results[split] = summary
    files = sum(item["files"] for item in results.values())
    total = sum(item["bytes"] for item in results.values())
    print(f"done in {time.perf_counter() - start:.1f}s: {files} files, {total} bytes in {args.output}", flush=True)
    return {"output": str(args.output), "splits": results}
