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
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as save_safetensors
from tqdm import tqdm

from cdomain.atomic import atomic_write
from cdomain.data.folder import DataSource, SampleList, resolve_source
from cdomain.latents.codecs import codec_config, ensure_entropy_tables
from cdomain.latents.encode import compress, encode
from cdomain.latents.images import load_rgb

FORMAT = "cdomain-latents-1"
INDEX = "index.json"


class CacheError(ValueError):
    """A latent cache that does not fit the request (other codec or data) or is unreadable."""


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
    """The ``index.json`` of a cache directory."""
    path = Path(directory) / INDEX
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no latent cache index (run cdomain-prepare latents first)") from None
    except (OSError, ValueError) as error:
        raise CacheError(f"{path}: unreadable latent cache index ({error})") from error
    if index.get("format") != FORMAT:
        raise CacheError(f"{path}: not a cdomain latent cache (format {index.get('format')!r})")
    return index


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
    """
    if shard_size < 1 or batch_size < 1:
        raise ValueError("shard_size and batch_size must be >= 1")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    samples = resolve_source(source, split)
    model = model.eval()
    ensure_entropy_tables(model)
    config = codec_config(model)
    fingerprints = {"codec": codec_fingerprint(model), "samples": samples_fingerprint(samples)}
    total = len(samples)
    shards = [(number, start, min(start + shard_size, total)) for number, start in enumerate(range(0, total, shard_size))]
    index_path = output / INDEX
    if index_path.exists() and not overwrite:
        try:
            existing = json.loads(index_path.read_text())
        except (OSError, ValueError):
            existing = {}
        if existing.get("fingerprints", fingerprints) != fingerprints or existing.get("shard_size", shard_size) != shard_size:
            raise CacheError(
                f"{output}: holds latents of another codec, data set or shard size "
                f"({existing.get('codec', {}).get('checkpoint') or existing.get('codec')}); "
                f"use another output folder or overwrite it"
            )
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
        with safe_open(str(output / entry["file"]), framework="pt") as handle:
            bits.append(handle.get_tensor("bits"))
            estimate.append(handle.get_tensor("likelihood_bits"))
            pixels.append(handle.get_tensor("image_size").prod(1).double())
    bits, estimate, pixels = torch.cat(bits), torch.cat(estimate), torch.cat(pixels)
    real = float((bits / pixels).mean()) if not torch.isnan(bits).any() else None
    return {"bpp": real, "likelihood_bpp": float((estimate / pixels).mean())}


class LatentCache:
    """Random access to a complete cache: ``cache[i] -> (y_hat, sigma_hat, label)`` as float32."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.index = read_index(self.directory)
        if not self.index.get("complete"):
            raise CacheError(f"{self.directory}: latent cache is incomplete; rerun cdomain-prepare latents to finish it")
        self.shard_size = int(self.index["shard_size"])
        self.files = [self.directory / entry["file"] for entry in self.index["shards"]]
        self._handles: dict[int, object] = {}
        labels = []
        for number, path in enumerate(self.files):
            if not path.exists():
                raise CacheError(f"{path}: shard listed in {INDEX} is missing")
            labels.append(self._handle(number).get_tensor("labels"))
        self.labels = torch.cat(labels) if labels else torch.empty(0, dtype=torch.int64)

    def __len__(self) -> int:
        return int(self.index["num_samples"])

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.index["classes"])

    @property
    def latent_channels(self) -> int:
        return int(self.index["latent_channels"])

    def _handle(self, number: int):
        handle = self._handles.get(number)
        if handle is None:
            handle = safe_open(str(self.files[number]), framework="pt")
            self._handles[number] = handle
        return handle

    def __getstate__(self) -> dict:  # worker processes reopen the shards
        return {**self.__dict__, "_handles": {}}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        number, local = divmod(index, self.shard_size)
        handle = self._handle(number)
        y_hat = handle.get_tensor(f"y_hat.{local}").float()
        sigma_hat = handle.get_tensor(f"sigma_hat.{local}").float()
        return y_hat, sigma_hat, int(self.labels[index])

    def sizes(self) -> dict[str, np.ndarray]:
        """Per-sample ``bits``, ``likelihood_bits``, ``image_size`` and ``padding`` arrays."""
        parts: dict[str, list] = {"bits": [], "likelihood_bits": [], "image_size": [], "padding": []}
        for number in range(len(self.files)):
            for key in parts:
                parts[key].append(self._handle(number).get_tensor(key).numpy())
        return {key: np.concatenate(value) for key, value in parts.items()}
