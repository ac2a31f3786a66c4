"""Latent cache: ``(y_hat, sigma_hat)`` of a data set, encoded once, in safetensors shards.

Layout of a cache directory (one per split)::

    index.json               what was encoded: codec, samples, classes, shards, mean bpp
    shard-00000.safetensors  samples [0, shard_size): y_hat.<i>, sigma_hat.<i> per sample i
    shard-00001.safetensors  ... plus labels, bits, likelihood_bits, image_size, padding

Every shard is written to a temporary name and renamed into place, so a shard file is either
complete or absent. Each shard's metadata names the codec and sample-list fingerprints and its
sample range; a rerun keeps every shard whose metadata matches and encodes only the missing
ones, so an interrupted ``cdomain-prepare latents`` continues where it stopped. ``index.json``
(also atomic) is rewritten after each shard and marked ``complete`` at the end.

Latents are stored per sample, so images of different sizes can share a shard. ``y_hat`` is
stored as int16 when it is integral (bmshj2018: rounded y), else float32; ``sigma_hat`` as
float32. ``bits`` is the real bitstream size per image from ``compress()`` (NaN when skipped),
``likelihood_bits`` the estimate from the likelihoods.

The shard size is a writing detail, not part of a cache's identity: a rerun with another
``shard_size`` keeps (or resumes) an existing cache in the layout it was written with, and readers
locate samples from the ``start``/``count`` of each shard entry in ``index.json``.

Reading never trusts the files: an unreadable or inconsistent ``index.json`` (wrong types,
zero counts, shards that do not tile the samples, a shard name that is not a plain file name
inside the cache folder), a damaged shard or one missing a tensor raises :class:`CacheError`
naming the file and the cause.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import operator
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors
from tqdm import tqdm

from cdomain.atomic import atomic_write, make_folders
from cdomain.data.folder import DataSource, SampleList, resolve_source
from cdomain.errors import DataError
from cdomain.latents.codecs import codec_config, ensure_entropy_tables
from cdomain.latents.encode import compress, encode
from cdomain.latents.images import load_rgb

FORMAT = "cdomain-latents-1"
INDEX = "index.json"


class CacheError(DataError):
    """A latent cache that does not fit the request (other codec or data) or is unreadable;
    names the file and the cause."""


class MissingCacheError(CacheError, FileNotFoundError):
    """A cache folder without ``index.json`` (caught by ``except FileNotFoundError`` too)."""


class CacheIndexError(CacheError, IndexError):
    """A sample index outside the cache (an ``IndexError`` too, so sequence iteration stops)."""


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.safetensors"


def codec_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 over the codec's weights and entropy tables (names, shapes, values)."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def samples_fingerprint(samples: SampleList) -> str:
    """SHA-256 over the sample files (relative to their common folder), labels and classes."""
    digest = hashlib.sha256()
    root = os.path.commonpath(samples.paths) if len(samples.paths) > 1 else os.path.dirname(samples.paths[0])
    for path, label in zip(samples.paths, samples.labels):
        digest.update(f"{os.path.relpath(path, root)}\t{label}\n".encode())
    digest.update("\n".join(samples.classes).encode())
    return digest.hexdigest()[:16]


def read_index(directory: str | os.PathLike[str]) -> dict:
    """The ``index.json`` of a cache directory (a JSON object of this cache format)."""
    path = Path(directory) / INDEX
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingCacheError(f"{path}: no latent cache index (run cdomain-prepare latents first)") from None
    except (OSError, ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError: ValueErrors
        raise CacheError(f"{path}: unreadable latent cache index ({error})") from error
    if not isinstance(index, dict):
        raise CacheError(f"{path}: not a cdomain latent cache (a JSON {type(index).__name__}, not an object)")
    if index.get("format") != FORMAT:
        raise CacheError(f"{path}: not a cdomain latent cache (format {index.get('format')!r})")
    return index


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shard_file(directory: Path, name: Any, where: str) -> Path:
    """``directory / name`` for a shard name read from ``index.json``: a plain file name only."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name \
            or "\0" in name or os.path.isabs(name) or Path(name).name != name:
        raise CacheError(f"{where}: shard file {name!r} is not a plain file name inside the cache folder")
    return directory / name


def _check_index(directory: Path, index: dict) -> list[tuple[Path, int, int]]:
    """Check the fields :class:`LatentCache` uses; return ``(file, start, count)`` per shard."""
    where = str(directory / INDEX)

    def field(name: str, check, expected: str):
        value = index.get(name)
        if not check(value):
            raise CacheError(f"{where}: field {name!r} must be {expected}, got {value!r:.80}")
        return value

    total = field("num_samples", lambda v: _is_int(v) and v >= 1, "a positive integer")
    field("latent_channels", lambda v: _is_int(v) and v >= 1, "a positive integer")
    field("shard_size", lambda v: _is_int(v) and v >= 1, "a positive integer")
    field("classes", lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v), "a list of class names")
    field("split", lambda v: v is None or isinstance(v, str), "a split name or null")
    for name in ("bpp", "likelihood_bpp"):
        field(name, lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)),
              "a number or null")
    entries = field("shards", lambda v: isinstance(v, list) and len(v) >= 1, "a non-empty list of shards")
    shards, expected_start = [], 0
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise CacheError(f"{where}: shard entry {number} must be an object, got {entry!r:.80}")
        path = _shard_file(directory, entry.get("file"), where)
        start, count = entry.get("start"), entry.get("count")
        if not (_is_int(start) and _is_int(count)) or count < 1:
            raise CacheError(f"{where}: shard {path.name}: start and count must be integers, count >= 1 "
                             f"(got start {start!r:.40}, count {count!r:.40})")
        if start != expected_start:
            raise CacheError(f"{where}: shard {path.name} starts at sample {start}, expected {expected_start} "
                             f"(shards must cover the samples in order, without gaps or overlaps)")
        expected_start = start + count
        shards.append((path, start, count))
    if expected_start != total:
        raise CacheError(f"{where}: shards hold {expected_start} samples, num_samples is {total}")
    return shards


def _shard_metadata(path: Path) -> dict | None:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except Exception:  # a foreign or damaged file is treated as absent and rewritten
        return None


def _batches(images: list[torch.Tensor], batch_size: int):
    """Runs of consecutive same-size images, at most ``batch_size`` long: (start, tensor)."""
    start = 0
    while start < len(images):
        stop = start + 1
        while stop < len(images) and stop - start < batch_size and images[stop].shape == images[start].shape:
            stop += 1
        yield start, torch.stack(images[start:stop])
        start = stop


def _encode_shard(model, samples: SampleList, start: int, stop: int, batch_size: int, bitstreams: bool) -> dict:
    images = [load_rgb(samples.paths[i]) for i in range(start, stop)]
    tensors: dict[str, torch.Tensor] = {}
    count = stop - start
    bits = torch.full((count,), math.nan, dtype=torch.float64)
    likelihood_bits = torch.empty(count, dtype=torch.float64)
    sizes = torch.empty(count, 2, dtype=torch.int64)
    paddings = torch.empty(count, 4, dtype=torch.int64)
    for offset, batch in _batches(images, batch_size):
        latents = encode(model, batch)
        if bitstreams:
            bits[offset : offset + len(batch)] = compress(model, batch).bits
        likelihood_bits[offset : offset + len(batch)] = latents.likelihood_bits
        sizes[offset : offset + len(batch)] = torch.tensor(latents.image_size)
        paddings[offset : offset + len(batch)] = torch.tensor(latents.padding)
        y_hat = latents.y_hat
        if torch.equal(y_hat, torch.round(y_hat)) and y_hat.abs().max() < 32767:
            y_hat = y_hat.to(torch.int16)
        for k in range(len(batch)):
            tensors[f"y_hat.{offset + k}"] = y_hat[k].contiguous().clone()
            tensors[f"sigma_hat.{offset + k}"] = latents.sigma_hat[k].float().contiguous().clone()
    tensors["labels"] = torch.tensor(samples.labels[start:stop], dtype=torch.int64)
    tensors["bits"] = bits
    tensors["likelihood_bits"] = likelihood_bits
    tensors["image_size"] = sizes
    tensors["padding"] = paddings
    return tensors


def write_latents(
    model: torch.nn.Module,
    source: DataSource,
    output: str | os.PathLike[str],
    *,
    split: str | None = None,
    shard_size: int = 256,
    batch_size: int = 16,
    bitstreams: bool = True,
    codec_path: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Encode every image of ``source`` (``split``) with ``model`` into a cache at ``output``.

    Resumable: shards already written for the same codec and samples are kept. A directory
    holding a cache for another codec or other samples raises :class:`CacheError` unless
    ``overwrite``. ``bitstreams=False`` skips ``compress()`` (no real bpp, faster). Returns the
    index that is also written to ``output/index.json``.

    ``shard_size`` applies to a new cache only: an existing cache of the same codec and samples
    keeps the shard size it was written with (resumed in it when incomplete), and a complete,
    intact one is returned as it is, without encoding or rewriting anything.
    """
    if shard_size < 1 or batch_size < 1:
        raise ValueError("shard_size and batch_size must be >= 1")
    output = make_folders(Path(output))
    samples = resolve_source(source, split)
    model = model.eval()
    ensure_entropy_tables(model)
    config = codec_config(model)
    fingerprints = {"codec": codec_fingerprint(model), "samples": samples_fingerprint(samples)}
    total = len(samples)
    index_path = output / INDEX
    existing: dict = {}
    if index_path.exists() and not overwrite:
        try:
            existing = json.loads(index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):  # damaged: rewritten like a damaged shard
            existing = {}
        if not isinstance(existing, dict):
            existing = {}
        if existing.get("fingerprints", fingerprints) != fingerprints:
            codec = existing.get("codec")
            named = (codec.get("checkpoint") if isinstance(codec, dict) else None) or codec
            raise CacheError(
                f"{output}: holds latents of another codec or data set ({named!r:.200}); "
                f"use another output folder or overwrite it"
            )
        # the shard size is a writing detail: keep (or resume) the layout the cache was written with
        if _is_int(existing.get("shard_size")) and existing["shard_size"] >= 1:
            shard_size = existing["shard_size"]
    shards = [(number, start, min(start + shard_size, total)) for number, start in enumerate(range(0, total, shard_size))]
    index = {
        "format": FORMAT,
        "codec": {**config, "checkpoint": codec_path},
        "fingerprints": fingerprints,
        "source": str(source) if isinstance(source, (str, os.PathLike)) else "file list",
        "split": split,
        "classes": list(samples.classes),
        "num_samples": total,
        "latent_channels": int(model.M),
        "shard_size": shard_size,
        "shards": [],
        "complete": False,
    }

    def valid(number: int, start: int, stop: int) -> bool:
        if overwrite:
            return False
        meta = _shard_metadata(output / shard_name(number))
        return meta is not None and meta.get("codec") == fingerprints["codec"] and \
            meta.get("samples") == fingerprints["samples"] and meta.get("range") == f"{start}:{stop}"

    done = [(n, a, b) for n, a, b in shards if valid(n, a, b)]
    index["shards"] = [{"file": shard_name(n), "start": a, "count": b - a} for n, a, b in done]
    if existing.get("complete") is True and len(done) == len(shards) and \
            all(existing.get(key) == index[key] for key in ("shards", "num_samples", "classes", "latent_channels")):
        return existing  # complete and intact: nothing to encode or rewrite
    atomic_write(index_path, json.dumps(index, indent=1))
    todo = [shard for shard in shards if shard not in done]
    started = time.perf_counter()
    bar = tqdm(total=total, initial=sum(b - a for _, a, b in done), desc=f"latents {output.name}", unit="img",
               disable=not progress, leave=False)
    for number, start, stop in todo:
        tensors = _encode_shard(model, samples, start, stop, batch_size, bitstreams)
        metadata = {"format": FORMAT, "codec": fingerprints["codec"], "samples": fingerprints["samples"],
                    "range": f"{start}:{stop}"}
        atomic_write(output / shard_name(number), save_safetensors(tensors, metadata=metadata))
        index["shards"].append({"file": shard_name(number), "start": start, "count": stop - start})
        index["shards"].sort(key=lambda entry: entry["start"])
        atomic_write(index_path, json.dumps(index, indent=1))
        bar.update(stop - start)
    bar.close()
    index.update(_summary(output, index), complete=True, seconds=round(time.perf_counter() - started, 1))
    atomic_write(index_path, json.dumps(index, indent=1))
    return index


def _summary(output: Path, index: dict) -> dict:
    """Mean real and estimated bpp over the cache (pixels of the unpadded images)."""
    bits, estimate, pixels = [], [], []
    for entry in index["shards"]:
        path = output / entry["file"]
        try:
            with safe_open(str(path), framework="pt") as handle:
                bits.append(handle.get_tensor("bits"))
                estimate.append(handle.get_tensor("likelihood_bits"))
                pixels.append(handle.get_tensor("image_size").prod(1).double())
        except (OSError, SafetensorError) as error:
            raise CacheError(f"{path}: unreadable latent shard ({error})") from error
    bits, estimate, pixels = torch.cat(bits), torch.cat(estimate), torch.cat(pixels)
    real = float((bits / pixels).mean()) if not torch.isnan(bits).any() else None
    return {"bpp": real, "likelihood_bpp": float((estimate / pixels).mean())}


class LatentCache:
    """Random access to a complete cache: ``cache[i] -> (y_hat, sigma_hat, label)`` as float32.

    Opening checks ``index.json`` and every shard's header, metadata and labels; reading a sample
    checks its tensors. Any problem raises :class:`CacheError` naming the file and the cause.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.index = read_index(self.directory)
        if self.index.get("complete") is not True:
            raise CacheError(f"{self.directory}: latent cache is incomplete; rerun cdomain-prepare latents to finish it")
        shards = _check_index(self.directory, self.index)
        self.shard_size = int(self.index["shard_size"])
        self.files = [path for path, _, _ in shards]
        self.starts = [start for _, start, _ in shards]
        self.counts = [count for _, _, count in shards]
        self._handles: dict[int, tuple[Any, frozenset]] = {}
        fingerprints = self.index.get("fingerprints")
        labels = []
        for number, path in enumerate(self.files):
            if not path.is_file():
                raise CacheError(f"{path}: shard listed in {INDEX} is missing")
            meta = self._metadata(number)
            expected = f"{self.starts[number]}:{self.starts[number] + self.counts[number]}"
            if meta.get("range") != expected:
                raise CacheError(f"{path}: shard holds samples {meta.get('range')!r}, {INDEX} lists {expected}")
            if isinstance(fingerprints, dict) and any(meta.get(k) != fingerprints.get(k) for k in ("codec", "samples")):
                raise CacheError(f"{path}: shard was written for another codec or data set than {INDEX} names")
            labels.append(self._tensor(number, "labels", (self.counts[number],), (torch.int64,)))
        self.labels = torch.cat(labels)
        bad = (self.labels < -1) | (self.labels >= len(self.classes))  # -1: unlabelled file list
        if bad.any():
            raise CacheError(f"{self.directory}: label {int(self.labels[bad][0])} does not index the "
                             f"{len(self.classes)} classes of {INDEX}")

    def __len__(self) -> int:
        return int(self.index["num_samples"])

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.index["classes"])

    @property
    def latent_channels(self) -> int:
        return int(self.index["latent_channels"])

    def _handle(self, number: int):
        return self._open(number)[0]

    def _open(self, number: int) -> tuple[Any, frozenset]:
        """The open shard ``number`` and the names of its tensors."""
        opened = self._handles.get(number)
        if opened is None:
            try:
                handle = safe_open(str(self.files[number]), framework="pt")
                opened = (handle, frozenset(handle.keys()))
            except (OSError, SafetensorError) as error:
                raise CacheError(f"{self.files[number]}: unreadable latent shard ({error})") from error
            self._handles[number] = opened
        return opened

    def _metadata(self, number: int) -> dict:
        try:
            meta = self._handle(number).metadata() or {}
        except (OSError, SafetensorError) as error:
            raise CacheError(f"{self.files[number]}: unreadable latent shard metadata ({error})") from error
        if meta.get("format") != FORMAT:
            raise CacheError(f"{self.files[number]}: not a cdomain latent shard (format {meta.get('format')!r})")
        return meta

    def _tensor(self, number: int, key: str, shape: tuple | None = None, dtypes: tuple = ()) -> torch.Tensor:
        """Tensor ``key`` of shard ``number``, checked against ``shape`` (None: any) and ``dtypes``."""
        path = self.files[number]
        handle, keys = self._open(number)
        if key not in keys:
            raise CacheError(f"{path}: shard has no tensor {key!r}")
        try:
            tensor = handle.get_tensor(key)
        except (OSError, SafetensorError) as error:
            raise CacheError(f"{path}: cannot read tensor {key!r} ({error})") from error
        if shape is not None and (tensor.dim() != len(shape) or
                                  any(want is not None and have != want for have, want in zip(tensor.shape, shape))):
            raise CacheError(f"{path}: tensor {key!r} has shape {tuple(tensor.shape)}, expected "
                             f"{tuple('*' if want is None else want for want in shape)}")
        if dtypes and tensor.dtype not in dtypes:
            wanted = " or ".join(map(str, dtypes))
            raise CacheError(f"{path}: tensor {key!r} has dtype {tensor.dtype}, expected {wanted}")
        return tensor

    def __getstate__(self) -> dict:  # worker processes reopen the shards
        return {**self.__dict__, "_handles": {}}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        index = operator.index(index)
        if not 0 <= index < len(self):
            raise CacheIndexError(f"{self.directory}: sample {index} out of range (the cache holds {len(self)})")
        number = bisect.bisect_right(self.starts, index) - 1
        local = index - self.starts[number]
        channels = self.latent_channels
        y_hat = self._tensor(number, f"y_hat.{local}", (channels, None, None),
                             (torch.int16, torch.float32, torch.float16, torch.bfloat16))
        sigma_hat = self._tensor(number, f"sigma_hat.{local}", tuple(y_hat.shape), (torch.float32,))
        return y_hat.float(), sigma_hat.float(), int(self.labels[index])

    def sizes(self) -> dict[str, np.ndarray]:
        """Per-sample ``bits``, ``likelihood_bits``, ``image_size`` and ``padding`` arrays."""
        columns = {"bits": 1, "likelihood_bits": 1, "image_size": 2, "padding": 4}
        parts: dict[str, list] = {key: [] for key in columns}
        for number, count in enumerate(self.counts):
            for key, width in columns.items():
                shape = (count,) if width == 1 else (count, width)
                parts[key].append(self._tensor(number, key, shape).numpy())
        return {key: np.concatenate(value) for key, value in parts.items()}
