"""Datasets at a chosen JPEG quality: re-encoded copies cached on disk, and random-quality augmentation.

``reencoded_samples`` gives the same samples re-encoded at IJG quality Q, written once into
``$CDOMAIN_DATA/reencoded/<dataset key>/<method>-q<Q>/`` and reused by later runs:

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
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cdomain.data.embedded import data_dir
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


def reencoded_samples(
    samples: SampleList,
    quality: int,
    method: str = "pixel",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    strict: bool = True,
    transcode: str | os.PathLike[str] | None = None,
) -> SampleList:
    """The same samples (same order and labels) re-encoded at IJG ``quality``, cached on disk.

    Unreadable source files keep their original path, so a loader with ``skip_bad`` skips and
    counts them exactly as it would have. ``strict=False`` reads corrupt files as libjpeg does;
    ``transcode`` (a cache folder) reads unsupported formats through their transcoded copies
    (:mod:`cdomain.jpeg.transcode`).
    """
    if method not in METHODS:
        raise ValueError(f"re-encoding method must be one of {METHODS}, got {method!r}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    root = Path(cache_dir) if cache_dir is not None else data_dir() / "reencoded"
    directory = root / dataset_key(samples) / f"{method}-q{int(quality)}"
    paths = []
    pending = []
    for index, source in enumerate(samples.paths):
        target = directory / f"{index:07d}.jpg"
        paths.append(str(target))
        if not target.exists():
            pending.append((index, source, target))
    for index, source, target in tqdm(
        pending, desc=f"re-encoding at q{quality} ({method})", unit="img", disable=not progress, leave=False
    ):
        try:
            image = _read_source(source, strict, transcode)
        except JPEGError:
            paths[index] = source
            continue
        if method == "dct":
            write_coefficients(requantize_image(image, quality), target)
        else:
            subsampling = image.subsampling if image.subsampling in SUBSAMPLING_FACTORS else "4:2:0"
            write_jpeg(image.to_rgb(), target, quality, subsampling)
    return SampleList(tuple(paths), samples.labels, samples.classes)


def _read_source(source: str, strict: bool, transcode: str | os.PathLike[str] | None) -> DCTImage:
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
