"""A data set as learned-codec bitstream files: one container per image, class folders mirrored.

:func:`compress_samples` entropy-codes every image of a sample list with a codec and writes
``OUTPUT/<class>/<stem>.cdlb`` (:mod:`cdomain.latents.bitstream`); ``cdomain-prepare compress``
calls it once per split (``OUTPUT/train``, ``OUTPUT/val``), so the output is again an ImageFolder
tree that :func:`cdomain.data.registry.open_dataset` reads as a bitstream data set.

Like every writer in cdomain:

- each file is written atomically (a temporary name, then a rename), so a file is complete or
  absent, whenever the run is killed;
- a rerun keeps every file that is already there, parses as a whole and was written by the same
  codec for an image of the same size, and writes only the others (resumable);
- a file in the way that is not such a bitstream is never replaced: one of another codec only
  with ``overwrite``, anything else (not a cdomain bitstream) not at all;
- ``workers`` processes share the images; a progress bar shows the files done.

The summary counts the files and their bytes and gives the real bits per pixel: the size of the
whole file (header included, :data:`~cdomain.latents.bitstream.OVERHEAD` bytes) in bits over the
unpadded pixels, averaged over the images (as the JPEG sweeps average each file's bpp).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import torch
from tqdm import tqdm

from cdomain.atomic import make_folders
from cdomain.data.folder import SampleList
from cdomain.errors import DataError
from cdomain.latents.bitstream import MAGIC, BitstreamError, codec_key, read_bitstream, write_bitstream
from cdomain.latents.codecs import ensure_entropy_tables
from cdomain.latents.encode import compress
from cdomain.latents.images import load_rgb

#: File name suffix of a bitstream container.
SUFFIX = ".cdlb"

_WORKER: dict = {}  # the codec (and its key) of a worker process


def bitstream_paths(samples: SampleList, output: str | os.PathLike[str]) -> list[Path]:
    """Where each sample's container goes: ``output/<class>/<stem>.cdlb`` (``output/<stem>.cdlb``
    for unlabelled samples). Two samples that would share a file raise :class:`DataError`."""
    output = Path(output)
    targets, seen = [], {}
    for path, label in zip(samples.paths, samples.labels):
        folder = output / samples.classes[label] if 0 <= label < len(samples.classes) else output
        target = folder / (Path(path).stem + SUFFIX)
        if target in seen:
            raise DataError(f"{path}: would be written to {target}, as {seen[target]} is (same file name stem)")
        seen[target] = path
        targets.append(target)
    return targets


def _existing(target: Path, key: tuple, image_size: tuple[int, int] | None, overwrite: bool) -> bool:
    """Whether ``target`` already holds this image's container (True: keep it).

    Raises :class:`DataError` for a file that must not be replaced.
    """
    if not target.exists():
        return False
    if not target.is_file():
        raise DataError(f"{target}: exists and is not a file; choose another output folder")
    try:
        with target.open("rb") as handle:
            magic = handle.read(len(MAGIC))
    except OSError as error:
        raise DataError(f"{target}: cannot read ({error.strerror or error})") from None
    if magic != MAGIC:
        raise DataError(f"{target}: exists and is not a cdomain bitstream; choose another output folder")
    try:
        bitstream = read_bitstream(target)
    except BitstreamError:
        return False  # a damaged container of ours: written again
    same_image = image_size is None or bitstream.image_size == tuple(image_size)
    if (bitstream.architecture, bitstream.quality, bitstream.codec_hash) == tuple(key) and same_image:
        return True
    if not overwrite:
        raise DataError(f"{target}: holds a bitstream of another codec or image ({bitstream.codec_description()}, "
                        f"{bitstream.image_size[0]}x{bitstream.image_size[1]}); pass --overwrite to replace it "
                        f"or choose another output folder")
    return False


def _image_size(path: str) -> tuple[int, int] | None:
    """``(height, width)`` of an image file from its header, or None when it cannot be told cheaply."""
    from cdomain.jpeg.markers import parse_header

    try:
        with open(path, "rb") as handle:
            header = parse_header(handle.read(1 << 16), path)
        return int(header.height), int(header.width)
    except (OSError, ValueError):
        return None  # a header beyond the first 64 KiB or a bad file: the encode step reports it


def _compress_one(codec: torch.nn.Module, source: str, target: Path) -> tuple[int, float]:
    """Encode ``source`` into ``target``; returns (file bytes, bits per pixel of the file)."""
    image = load_rgb(source)[None]
    compressed = compress(codec, image)
    path = write_bitstream(target, compressed, codec)
    size = path.stat().st_size
    return size, 8.0 * size / (image.shape[-2] * image.shape[-1])


def _init_worker(codec: torch.nn.Module) -> None:
    torch.set_num_threads(1)
    _WORKER["codec"] = codec


def _work(item: tuple[str, str]) -> tuple[int, float]:
    source, target = item
    return _compress_one(_WORKER["codec"], source, Path(target))


def compress_samples(
    codec: torch.nn.Module,
    samples: SampleList,
    output: str | os.PathLike[str],
    *,
    workers: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    desc: str | None = None,
) -> dict:
    """Write every sample as a bitstream container under ``output``; returns the summary.

    Summary keys: ``files``, ``written``, ``kept`` (already complete from an earlier run),
    ``bytes`` (all files), ``bpp`` (mean over images of the file's bits per unpadded pixel),
    ``seconds``, ``output``.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an int >= 0, got {workers!r}")
    output = Path(output)
    codec = ensure_entropy_tables(codec.eval())
    key = codec_key(codec)
    targets = bitstream_paths(samples, output)
    started = time.perf_counter()
    todo, sizes, bpps = [], [], []
    for source, target in zip(samples.paths, targets):
        if _existing(target, key, _image_size(source), overwrite):
            bitstream = read_bitstream(target)
            size = target.stat().st_size
            sizes.append(size)
            bpps.append(8.0 * size / (bitstream.image_size[0] * bitstream.image_size[1]))
        else:
            todo.append((source, str(target)))
    kept = len(sizes)
    for folder in sorted({Path(target).parent for _, target in todo}):
        make_folders(folder)
    bar = tqdm(total=len(targets), initial=kept, desc=desc or f"compress {output.name}", unit="img",
               disable=not progress, leave=False)
    try:
        if workers == 0 or len(todo) <= 1:
            for source, target in todo:
                size, bpp = _compress_one(codec, source, Path(target))
                sizes.append(size)
                bpps.append(bpp)
                bar.update(1)
        else:
            context = multiprocessing.get_context("fork")
            with context.Pool(min(workers, len(todo)), initializer=_init_worker, initargs=(codec,)) as pool:
                for size, bpp in pool.imap_unordered(_work, todo, chunksize=4):
                    sizes.append(size)
                    bpps.append(bpp)
                    bar.update(1)
    finally:
        bar.close()
    return {
        "output": str(output),
        "files": len(targets),
        "written": len(todo),
        "kept": kept,
        "bytes": int(sum(sizes)),
        "bpp": float(sum(bpps) / len(bpps)) if bpps else None,
        "seconds": round(time.perf_counter() - started, 2),
    }
