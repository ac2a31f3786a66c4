"""Resize an image tree into a JPEG tree: the standard preparation for training on DCT coefficients.

:func:`resize_tree` walks ``source``, scales every image so that its shortest (or longest)
side is ``size`` pixels with Pillow's antialiased Lanczos filter, and writes it as a baseline
YCbCr (or grayscale) JPEG at the same relative path under ``output``:

- quality: a fixed IJG quality, or ``"keep"``: the quality estimated from the source's own
  quantization tables (:func:`cdomain.jpeg.tables.estimate_quality`; sources without tables,
  such as PNG, get :data:`KEEP_FALLBACK_QUALITY`);
- chroma subsampling: ``"keep"`` (the source's 4:4:4, 4:2:2 or 4:2:0; anything else 4:2:0)
  or ``"420"``;
- CMYK, palette, alpha and 16-bit sources are converted to RGB (or grayscale) by Pillow, so a
  tree with ImageNet's CMYK files and PNGs named ``.JPEG`` comes out readable by cdomain; files
  with a non-JPEG suffix (``.png``) get ``.jpg``; other files beside the images (label lists,
  ``.txt``/``.csv``/``.json``/``.yaml``) are copied, so a dataset's layout stays usable;
- large JPEGs are first decoded at a reduced scale by libjpeg (``draft``, no less than twice the
  target size), then filtered: Pillow's own ``thumbnail`` strategy;
- EXIF orientation is not applied (cdomain reads coefficients as stored, as ImageNet loaders do).

Mechanics. ``workers`` processes each take their own files; every file is written atomically.
``output`` holds a manifest, ``.cdomain-resize.json``, written atomically at the start (the
settings and a random run token), every :data:`MANIFEST_SECONDS` and at the end (the files
done, copied and skipped with their causes). Each written JPEG carries the run token in a
comment marker, so after a kill (even SIGKILL, between two manifest writes) a rerun with the
same settings recognises the complete files it wrote and skips them. A non-empty ``output``
without that manifest, a manifest with other settings, and an existing file in the way that
this run did not write are refused before any work (:class:`cdomain.errors.RunFolderError`).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
import secrets
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from cdomain.atomic import atomic_path, atomic_write, make_folders
from cdomain.errors import ConfigError, RunFolderError

#: The manifest file in the output folder.
MANIFEST = ".cdomain-resize.json"
MANIFEST_FORMAT = "cdomain-resize-1"
#: Seconds between manifest writes during a run.
MANIFEST_SECONDS = 30.0
#: Quality used by ``quality="keep"`` for sources without quantization tables (PNG, BMP...).
KEEP_FALLBACK_QUALITY = 90
#: Suffixes written as they are (already JPEG names); other image suffixes become ``.jpg``.
JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")
IMAGE_SUFFIXES = JPEG_SUFFIXES + (".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
#: Small files copied beside the images (label lists and metadata of dataset layouts).
COPIED_SUFFIXES = (".txt", ".csv", ".json", ".yaml", ".yml", ".tsv")
SUBSAMPLINGS = ("keep", "420")
#: Pillow's subsampling codes, as cdomain names them.
_PILLOW_SUBSAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}
_COMMENT_PREFIX = b"cdomain-prepare resize "


@dataclass(frozen=True)
class ResizeSettings:
    """What a resized tree was made with; a resume must use the same."""

    size: int = 256
    longest: bool = False
    quality: int | str = "keep"  # 1..100 or "keep"
    subsampling: str = "keep"  # "keep" or "420"

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ConfigError("--size", f"must be a positive number of pixels, got {self.size!r}")
        if self.quality != "keep" and (isinstance(self.quality, bool) or not isinstance(self.quality, int)
                                       or not 1 <= self.quality <= 100):
            raise ConfigError("--quality", f"must be keep or an IJG quality in 1..100, got {self.quality!r}")
        if self.subsampling not in SUBSAMPLINGS:
            raise ConfigError("--subsampling", f"must be one of {', '.join(SUBSAMPLINGS)}, got {self.subsampling!r}")


@dataclass
class ResizeSummary:
    """Counts of one run (``resized`` includes files a resumed run found complete)."""

    files: int = 0  # files considered (images and copied files)
    resized: int = 0
    reused: int = 0  # complete from an earlier, interrupted run
    copied: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # relative path -> cause
    converted: dict[str, int] = field(default_factory=dict)  # source kind (not a YCbCr/gray JPEG) -> files
    seconds: float = 0.0

    def line(self) -> str:
        """The one-line summary the command prints."""
        causes: dict[str, int] = {}
        for cause in self.skipped.values():
            key = cause.split(":")[0]
            causes[key] = causes.get(key, 0) + 1
        skipped = f"{len(self.skipped)} skipped" + (
            " (" + "; ".join(f"{count} {cause}" for cause, count in sorted(causes.items())) + ")" if causes else "")
        ratio = f" ({self.bytes_out / self.bytes_in:.2f}x)" if self.bytes_in else ""
        converted = "".join(f"; {count} from {kind}" for kind, count in sorted(self.converted.items()))
        return (f"{self.files} files: {self.resized} resized ({self.reused} already done{converted}), "
                f"{self.copied} copied, "
                f"{skipped}; {_megabytes(self.bytes_in)} in, {_megabytes(self.bytes_out)} out{ratio}; "
                f"{self.seconds:.1f}s")


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def target_size(width: int, height: int, size: int, longest: bool = False) -> tuple[int, int]:
    """``(width, height)`` scaled so the shortest (``longest``: longest) side is ``size``, aspect kept."""
    side = max(width, height) if longest else min(width, height)
    scale = size / side
    if width == side:
        return size, max(1, round(height * scale))
    return max(1, round(width * scale)), size


def output_name(relative: str) -> str:
    """The output path of a source path relative to the tree: JPEG names kept, others ``.jpg``."""
    stem, suffix = os.path.splitext(relative)
    return relative if suffix.lower() in JPEG_SUFFIXES else stem + ".jpg"


def resize_image(source: str, target: str, settings: ResizeSettings, token: str = "") -> tuple[int, int, str]:
    """Resize one image file into ``target`` (atomically); returns (bytes in, bytes out, conversion).

    The conversion names what a source that was not a YCbCr or grayscale JPEG was (``"CMYK JPEG"``,
    ``"PNG"``), and is empty otherwise.

    Raises ``OSError``/``ValueError`` (from Pillow) for files it cannot read.
    """
    from PIL import Image, JpegImagePlugin

    with Image.open(source) as image:
        tables = getattr(image, "quantization", None) if image.format == "JPEG" else None
        conversion = "" if image.format == "JPEG" and image.mode in ("RGB", "L") else f"{image.mode} {image.format}"
        code = JpegImagePlugin.get_sampling(image) if image.format == "JPEG" else -1
        width, height = target_size(image.width, image.height, settings.size, settings.longest)
        if image.format == "JPEG":
            # libjpeg's DCT scaling (1/2, 1/4, 1/8) down to no less than twice the target, then
            # Lanczos: what Pillow's thumbnail() does, much faster on large photos, same result
            image.draft(image.mode, (2 * width, 2 * height))
        image.load()
        mode = "L" if image.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F") else "RGB"
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            image = image.point(lambda value: value / 256)  # 16-bit range to 8-bit
        converted = image.convert(mode) if image.mode != mode else image
        resized = converted.resize((width, height), Image.Resampling.LANCZOS)
    quality = settings.quality
    if quality == "keep":
        quality = _estimated_quality(tables)
    subsampling = "4:2:0"
    if settings.subsampling == "keep" and code in _PILLOW_SUBSAMPLING:
        subsampling = _PILLOW_SUBSAMPLING[code]
    options = {"quality": int(quality), "comment": _COMMENT_PREFIX + token.encode("ascii")}
    if mode == "RGB":
        options["subsampling"] = subsampling
    with atomic_path(target) as temporary:
        resized.save(temporary, "JPEG", **options)
    return os.path.getsize(source), os.path.getsize(target), conversion


def _estimated_quality(tables) -> int:
    """IJG quality of Pillow's ``image.quantization`` (natural order), or the fallback."""
    if not tables:
        return KEEP_FALLBACK_QUALITY
    from cdomain.jpeg.tables import estimate_quality

    import numpy as np

    luma = np.asarray(tables[min(tables)], dtype=np.float64).reshape(8, 8)
    chroma_keys = sorted(tables)[1:2]
    chroma = np.asarray(tables[chroma_keys[0]], dtype=np.float64).reshape(8, 8) if chroma_keys else None
    return estimate_quality(luma, chroma)


def written_by(path: str | os.PathLike[str], token: str) -> bool:
    """Whether the JPEG at ``path`` carries this run's comment marker (a complete file it wrote)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return bool(token) and (_COMMENT_PREFIX + token.encode("ascii")) in head


# ------------------------------------------------------------------------------------ the tree


def _walk(source: Path) -> Iterator[str]:
    """Relative paths of the files under ``source`` (sorted, hidden entries skipped)."""
    for folder, directories, files in os.walk(source):
        directories[:] = sorted(name for name in directories if not name.startswith("."))
        base = Path(folder).relative_to(source)
        for name in sorted(files):
            if not name.startswith("."):
                yield str(base / name) if str(base) != "." else name


def _job(item: tuple[str, str, str, ResizeSettings, str, str]) -> tuple[str, str, int, int, str]:
    """One file, in a worker: ``(relative, status, bytes in, bytes out, cause or conversion)``."""
    relative, source, target, settings, token, kind = item
    try:
        if kind == "copy":
            with atomic_path(target) as temporary:
                shutil.copyfile(source, temporary)
            size = os.path.getsize(target)
            return relative, "copied", size, size, ""
        bytes_in, bytes_out, conversion = resize_image(source, target, settings, token)
        return relative, "resized", bytes_in, bytes_out, conversion
    except Exception as error:  # noqa: BLE001  Pillow raises many types for unreadable files
        if isinstance(error, OSError) and getattr(error, "errno", None) == 28:  # ENOSPC: stop, do not skip
            raise
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        return relative, "skipped", 0, 0, f"unreadable: {text}"


def _load_manifest(output: Path, settings: ResizeSettings) -> dict | None:
    """The manifest of an earlier run into ``output`` (None if the folder is new or empty)."""
    path = output / MANIFEST
    if output.exists() and not output.is_dir():
        raise RunFolderError(f"{output}: exists and is not a folder")
    if not path.is_file():
        if output.is_dir() and any(output.iterdir()):
            raise RunFolderError(f"{output}: folder is not empty and holds no cdomain-prepare resize output; "
                                 "choose a new folder")
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("done"), dict):
            raise ValueError("not a resize manifest")
        token = manifest["token"]
        if not isinstance(token, str) or not token.isalnum():
            raise ValueError("bad token")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunFolderError(f"{path}: unreadable resize manifest ({error}); choose a new folder") from None
    if manifest.get("settings") != asdict(settings):
        raise RunFolderError(f"{output}: was resized with other settings ({manifest.get('settings')}); "
                             "rerun with those to continue, or choose a new folder")
    return manifest


def _write_manifest(output: Path, manifest: dict) -> None:
    atomic_write(output / MANIFEST, json.dumps(manifest, separators=(",", ":")))


def _check_paths(source: Path, output: Path) -> None:
    if not source.is_dir():
        raise RunFolderError(f"{source}: source folder does not exist")
    src, out = source.resolve(), output.resolve()
    if src == out or src in out.parents or out in src.parents:
        raise RunFolderError(f"{output}: the output folder must not be the source folder, inside it or around it")


def resize_tree(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    settings: ResizeSettings = ResizeSettings(),
    *,
    workers: int = 1,
    progress: bool = False,
    on_file: Callable[[str, str], None] | None = None,
) -> ResizeSummary:
    """Resize every image under ``source`` into ``output`` (see the module docstring).

    ``on_file(relative, status)`` is called in this process after each file.
    """
    from tqdm import tqdm

    source, output = Path(source), Path(output)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError("--workers", f"must be >= 1, got {workers!r}")
    _check_paths(source, output)
    manifest = _load_manifest(output, settings)
    resuming = manifest is not None
    if manifest is None:
        manifest = {"format": MANIFEST_FORMAT, "settings": asdict(settings), "token": secrets.token_hex(8),
                    "done": {}, "skipped": {}}
        make_folders(output)
        _write_manifest(output, manifest)
    token, done, skipped = manifest["token"], manifest["done"], manifest.setdefault("skipped", {})
    summary = ResizeSummary()
    start = time.perf_counter()
    jobs, claimed = [], {}
    for relative in _walk(source):
        suffix = os.path.splitext(relative)[1].lower()
        kind = "resize" if suffix in IMAGE_SUFFIXES else "copy" if suffix in COPIED_SUFFIXES else None
        summary.files += 1
        if kind is None:
            summary.skipped[relative] = "not an image"
            continue
        name = output_name(relative) if kind == "resize" else relative
        if name in claimed:
            summary.skipped[relative] = f"name clash: {claimed[name]} also becomes {name}"
            continue
        claimed[name] = relative
        if not _safe_relative(name):
            summary.skipped[relative] = "unsafe name"
            continue
        target = output / name
        record = done.get(relative)
        if isinstance(record, list) and len(record) == 3 and target.is_file():
            _count(summary, record[0], record[1], record[2], reused=True)
            continue
        if target.exists():
            if kind == "resize" and written_by(target, token):
                bytes_in, bytes_out = os.path.getsize(source / relative), os.path.getsize(target)
                done[relative] = ["resized", bytes_in, bytes_out]
                _count(summary, "resized", bytes_in, bytes_out, reused=True)
                continue
            if kind == "copy" and _same_bytes(source / relative, target):
                size = os.path.getsize(target)
                done[relative] = ["copied", size, size]
                _count(summary, "copied", size, size, reused=True)
                continue
            raise RunFolderError(f"{target}: exists and was not written by this cdomain-prepare resize run; "
                                 "remove it or choose a new folder")
        jobs.append((relative, str(source / relative), str(target), settings, token, kind))

    if resuming:
        _remove_stale_temporaries(output, set(claimed))
    last_write = time.monotonic()
    bar = tqdm(total=len(jobs), desc="resizing", unit="file", disable=not progress)
    pool = None
    try:
        if workers == 1 or len(jobs) <= 1:
            results = map(_job, jobs)
        else:
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
            results = pool.map(_job, jobs, chunksize=max(1, min(32, len(jobs) // (8 * workers))))
        for relative, status, bytes_in, bytes_out, cause in results:
            if status == "skipped":
                summary.skipped[relative] = cause
                skipped[relative] = cause
            else:
                done[relative] = [status, bytes_in, bytes_out]
                skipped.pop(relative, None)
                if cause:
                    summary.converted[cause] = summary.converted.get(cause, 0) + 1
                _count(summary, status, bytes_in, bytes_out, reused=False)
            bar.update(1)
            if on_file is not None:
                on_file(relative, status)
            if time.monotonic() - last_write > MANIFEST_SECONDS:
                _write_manifest(output, manifest)
                last_write = time.monotonic()
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        _write_manifest(output, manifest)
    summary.seconds = time.perf_counter() - start
    return summary


#: The temporary names :func:`cdomain.atomic.atomic_path` gives: ``.<name>.<8 random>.tmp``.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp$")


def _remove_stale_temporaries(output: Path, names: set[str]) -> None:
    """Remove half-written temporaries a killed run left beside the files it was writing."""
    for folder, _, files in os.walk(output):
        base = Path(folder).relative_to(output)
        for file in files:
            match = _TEMPORARY.match(file)
            if match and str(base / match["name"]) in names:
                with contextlib.suppress(OSError):
                    os.unlink(Path(folder) / file)


def _same_bytes(first: Path, second: Path) -> bool:
    """Whether two (small, copied) files hold the same bytes."""
    try:
        return first.stat().st_size == second.stat().st_size and first.read_bytes() == second.read_bytes()
    except OSError:
        return False


def _safe_relative(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def _count(summary: ResizeSummary, status: str, bytes_in: int, bytes_out: int, *, reused: bool) -> None:
    if status == "copied":
        summary.copied += 1
    else:
        summary.resized += 1
        summary.reused += int(reused)
    summary.bytes_in += int(bytes_in)
    summary.bytes_out += int(bytes_out)
