"""Datasets at a chosen JPEG quality: re-encoded copies cached on disk, and random-quality augmentation.

``reencoded_samples`` gives the same samples re-encoded at IJG quality Q, written once into
``$CDOMAIN_DATA/reencoded/<dataset key>/<method>-q<Q>/`` (nested folders of 1,000 files, an
``index.json`` once complete) and reused by later runs; every rank and worker writes its own
share (:func:`reencoded_samples`):

- ``"pixel"`` (default): decode to pixels, encode at Q with libjpeg, keeping the subsampling:
  what a camera or a server re-compressing the image does;
- ``"dct"``: requantize the coefficients to Q's tables and write them losslessly: faster, an
  approximation of the pixel route (see :mod:`cdomain.jpeg.encode`).

Each file is written atomically, so an interrupted run leaves only complete files and the next
run continues where it stopped. :class:`RandomQuality` is the per-sample, in-memory
counterpart used for JPEG-quality augmentation.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from cdomain.atomic import atomic_write
from cdomain.data.embedded import data_dir
from cdomain.errors import DataError
from cdomain.data.folder import SampleList
from cdomain.jpeg.encode import (
    SUBSAMPLING_FACTORS,
    quality_tables,
    reencode,
    requantize_image,
    write_coefficients,
    write_jpeg,
)
from cdomain.jpeg.errors import JPEGError, UnsupportedFormat
from cdomain.jpeg.image import DCTImage
from cdomain.jpeg.reader import read_coefficients

METHODS = ("pixel", "dct")


def dataset_key(samples: SampleList) -> str:
    """A short key identifying a list of files by path, size and modification time."""
    digest = hashlib.sha1()
    for path in samples.paths:
        stat = os.stat(path)
        digest.update(f"{os.path.abspath(path)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def cache_path(directory: Path, index: int) -> Path:
    """Where sample ``index`` of a cache lives: nested folders of 1,000 files."""
    return directory / f"{index // 1000:04d}" / f"{index:07d}.jpg"


def reencoded_samples(
    samples: SampleList,
    quality: int,
    method: str = "pixel",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    strict: bool = True,
    transcode: str | os.PathLike[str] | None = None,
    share: tuple[int, int] = (0, 1),
    workers: int = 0,
    wait: Callable[[], None] | None = None,
) -> SampleList:
    """The same samples (same order and labels) re-encoded at IJG ``quality``, cached on disk.

    Unreadable source files keep their original path, so a loader with ``skip_bad`` skips and
    counts them exactly as it would have. ``strict=False`` reads corrupt files as libjpeg does;
    ``transcode`` (a cache folder) reads unsupported formats through their transcoded copies
    (:mod:`cdomain.jpeg.transcode`); each reading gets its own cache.

    Scaling. ``share=(k, n)``: this process writes the samples ``i`` with ``i % n == k`` (ranks
    under ``torchrun`` each take their own share: no rank builds it all while the others wait), spread
    over ``workers`` processes in all, this one included (0 or 1: this one alone). With
    ``n > 1``, ``wait`` (a barrier, e.g. :func:`cdomain.train.distributed.barrier`) is called
    exactly once by every share before the shares are joined. A finished cache has an
    ``index.json`` (the sample count and the indices of unreadable sources): reusing it reads
    that one file, with no per-file existence checks.
    """
    if method not in METHODS:
        raise ValueError(f"re-encoding method must be one of {METHODS}, got {method!r}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    part, parts = share
    if not 0 <= part < parts:
        raise ValueError(f"share must be (k, n) with 0 <= k < n, got {share}")
    root = Path(cache_dir) if cache_dir is not None else data_dir() / "reencoded"
    reading = ("" if strict else "-lenient") + ("" if transcode is None else "-transcoded")
    directory = root / dataset_key(samples) / f"{method}-q{int(quality)}{reading}"
    transcode = None if transcode is None else os.fspath(transcode)
    failed = _read_index(directory, len(samples))
    if failed is None:
        mine = [i for i in range(part, len(samples), parts)]
        share_file = directory / "shares" / f"{part}-of-{parts}.json"
        known = _read_share(share_file, len(samples))
        if known is None:
            pending = [i for i in mine if not cache_path(directory, i).exists()]
            bad = _encode(samples, pending, directory, int(quality), method, workers, progress, strict, transcode)
            atomic_write(share_file, json.dumps({"failed": sorted(bad)}))
    if parts > 1 and wait is not None:
        wait()
    if failed is None:
        failed = set()
        for k in range(parts):
            part_failed = _read_share(directory / "shares" / f"{k}-of-{parts}.json", len(samples))
            if part_failed is None:
                raise DataError(f"{directory}: share {k} of {parts} of the re-encoded cache is missing; "
                                "every share must be written before the cache is used")
            failed |= part_failed
        atomic_write(directory / "index.json",
                     json.dumps({"format": INDEX_FORMAT, "count": len(samples), "failed": sorted(failed)}))
    paths = [samples.paths[i] if i in failed else str(cache_path(directory, i)) for i in range(len(samples))]
    return SampleList(tuple(paths), samples.labels, samples.classes)


INDEX_FORMAT = "cdomain-reencoded-1"


def _read_index(directory: Path, count: int) -> set[int] | None:
    """The unreadable indices of a finished cache, or None if it is not finished (or not valid)."""
    try:
        index = json.loads((directory / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT or index.get("count") != count:
        return None
    return _indices(index.get("failed"), count)


def _read_share(path: Path, count: int) -> set[int] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return _indices(record.get("failed") if isinstance(record, dict) else None, count)


def _indices(values, count: int) -> set[int] | None:
    if not isinstance(values, list) or not all(type(v) is int and 0 <= v < count for v in values):
        return None
    return set(values)


def encode_file(source: str, target: Path, quality: int, method: str, strict: bool = True,
                transcode: str | None = None) -> bool:
    """Re-encode one file into ``target`` (atomically); False if the source is unreadable."""
    try:
        image = _read_source(source, strict, transcode)
    except JPEGError:
        return False
    if method == "dct":
        write_coefficients(requantize_image(image, quality), target)
    else:
        subsampling = image.subsampling if image.subsampling in SUBSAMPLING_FACTORS else "4:2:0"
        write_jpeg(image.to_rgb(), target, quality, subsampling)
    return True


def _encode_loop(tasks, results) -> None:
    """A started worker: re-encode jobs from ``tasks`` until a ``None``, reporting to ``results``."""
    while True:
        job = tasks.get()
        if job is None:
            return
        index, source, target, quality, method, strict, transcode = job
        try:
            ok = encode_file(source, Path(target), quality, method, strict, transcode)
        except BaseException as error:  # noqa: BLE001  reported to the parent, which raises it
            results.put((index, error))
            return
        results.put((index, ok))


def _encode(samples: SampleList, pending: list[int], directory: Path, quality: int, method: str, workers: int,
            progress: bool, strict: bool = True, transcode: str | None = None) -> set[int]:
    """Encode the ``pending`` samples; the unreadable ones.

    ``workers`` > 1: this process and ``workers - 1`` started processes take jobs from one
    queue, so this process works while the others start. Once the queue is empty, this process
    also does the jobs the others still hold after waiting about as long as one of its own
    jobs takes (a worker still starting up, or dead, holds up nothing), then stops them. Workers
    are spawned: the parent may hold Numba or PyTorch threads, which a fork would copy half-alive.
    """
    jobs = {i: (i, samples.paths[i], str(cache_path(directory, i)), quality, method, strict, transcode) for i in pending}
    bar = tqdm(total=len(jobs), desc=f"re-encoding at q{quality} ({method})", unit="img", disable=not progress,
               leave=False)
    bad: set[int] = set()
    finished: set[int] = set()

    def record(index: int, ok) -> None:
        if isinstance(ok, BaseException):
            raise ok
        if index in finished:  # done twice (here and by a worker): the same bytes, written atomically
            return
        finished.add(index)
        if not ok:
            bad.add(index)
        bar.update(1)

    def run(index: int) -> None:
        record(index, encode_file(jobs[index][1], Path(jobs[index][2]), quality, method, strict, transcode))

    helpers = workers - 1 if len(jobs) > 1 else 0
    try:
        if helpers <= 0:
            for index in jobs:
                run(index)
            return bad
        context = multiprocessing.get_context("spawn")
        tasks, results = context.Queue(), context.Queue()
        for job in jobs.values():
            tasks.put(job)
        for _ in range(helpers + 1):  # one stop mark per started worker and one for this process
            tasks.put(None)
        processes = [context.Process(target=_encode_loop, args=(tasks, results), daemon=True) for _ in range(helpers)]
        for process in processes:
            process.start()
        tasks.cancel_join_thread()  # leftovers (a dead worker's stop mark) must not hold up exit
        try:
            start, own = time.perf_counter(), 0
            while (job := tasks.get()) is not None:
                run(job[0])
                own += 1
                while not results.empty():
                    record(*results.get())
            patience = 1.5 * (time.perf_counter() - start) / max(1, own)
            taken_over = []
            for index in sorted(set(jobs) - finished):
                deadline = time.monotonic() + patience
                while index not in finished:
                    try:
                        record(*results.get(timeout=max(0.001, deadline - time.monotonic())))
                    except queue.Empty:
                        break
                if index not in finished:
                    run(index)
                    taken_over.append(index)
        finally:
            for process in processes:  # done, interrupted or failed: the workers hold nothing needed
                if process.is_alive():
                    process.terminate()
                process.join(timeout=10)
        for index in taken_over:  # a stopped worker may have left a temporary of the same file
            target = Path(jobs[index][2])
            for stale in target.parent.glob(f".{target.name}.*.tmp"):
                stale.unlink(missing_ok=True)
    finally:
        bar.close()
    return bad


def _read_source(source: str, strict: bool, transcode: str | None) -> DCTImage:
    try:
        return read_coefficients(source, strict=strict)
    except UnsupportedFormat:
        if transcode is None:
            raise
        from cdomain.jpeg.transcode import transcoded_path

        return read_coefficients(transcoded_path(source, transcode))


@dataclass(frozen=True)
class RandomQuality:
    """Re-encode each image at a quality drawn uniformly from ``[low, high]`` (in memory).

    A per-sample transform for :class:`cdomain.data.loader.JPEGLoader` (``transform=``): the
    pixel route re-encodes with cdomain's libjpeg-equivalent encoder, the dct route requantizes.
    """

    low: int = 10
    high: int = 90
    method: str = "pixel"

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high <= 100:
            raise ValueError(f"quality range must satisfy 1 <= low <= high <= 100, got {self.low}..{self.high}")
        if self.method not in METHODS:
            raise ValueError(f"re-encoding method must be one of {METHODS}, got {self.method!r}")

    def __call__(self, image: DCTImage, rng: np.random.Generator) -> DCTImage:
        quality = int(rng.integers(self.low, self.high + 1))
        return requantize_image(image, quality) if self.method == "dct" else reencode(image, quality)

    def batch_tables(self, image: DCTImage, rng: np.random.Generator) -> tuple[np.ndarray, ...] | None:
        """For the batch path: the tables the dct route requantizes ``image`` to, drawn as
        :meth:`__call__` draws them, so the batch can requantize instead of the worker. None
        (drawing nothing) for the pixel route, which must run on the file."""
        if self.method != "dct":
            return None
        luma, chroma = quality_tables(int(rng.integers(self.low, self.high + 1)))
        return (luma,) + (chroma,) * (image.num_components - 1)
