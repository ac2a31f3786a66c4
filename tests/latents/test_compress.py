"""Bitstream data sets: compress_samples (layout, real bpp, resume, refusals), reading them back as latents."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.latents import require_compressai

require_compressai()

from cdomain.data.folder import SampleList  # noqa: E402
from cdomain.data.registry import open_dataset  # noqa: E402
from cdomain.errors import DataError  # noqa: E402
from cdomain.latents.bitstream import OVERHEAD, BitstreamError, read_bitstream  # noqa: E402
from cdomain.latents.bitstream_files import BitstreamFiles  # noqa: E402
from cdomain.latents.cache import write_latents  # noqa: E402
from cdomain.latents.codecs import load_codec  # noqa: E402
from cdomain.latents.compress import compress_samples  # noqa: E402
from cdomain.latents.encode import compress, encode  # noqa: E402
from cdomain.latents.images import load_rgb  # noqa: E402
from cdomain.latents.loader import LatentLoader  # noqa: E402
from tests.latents.conftest import CODEC_PATH  # noqa: E402


def tiny(split: str = "val", classes: int = 3, per_class: int = 3) -> SampleList:
    """The first images of the first classes of the embedded textures-tiny split (kept small: encoding is slow
    on a loaded machine)."""
    samples = open_dataset("textures-tiny").split(split)
    keep = [i for i, label in enumerate(samples.labels) if label < classes]
    keep = [i for i in keep if sum(samples.labels[j] == samples.labels[i] for j in keep if j < i) < per_class]
    return SampleList(tuple(samples.paths[i] for i in keep), tuple(samples.labels[i] for i in keep),
                      samples.classes[:classes])


def other_codec() -> torch.nn.Module:
    """The test codec with other weights and quality 3: another codec for the headers."""
    codec = load_codec(CODEC_PATH)
    with torch.no_grad():
        codec.h_s[0].bias.add_(0.01)
    codec.cdomain_config["quality"] = 3
    return codec


def test_layout_sizes_and_real_bpp(codec, tmp_path):
    samples = tiny()
    summary = compress_samples(codec, samples, tmp_path / "out", progress=False)
    files = sorted((tmp_path / "out").rglob("*.cdlb"))
    assert summary["files"] == summary["written"] == len(samples) == len(files) and summary["kept"] == 0
    # one class folder per class, one file per image, named after it
    expected = {(samples.classes[label], Path(path).stem + ".cdlb") for path, label in zip(samples.paths, samples.labels)}
    assert {(path.parent.name, path.name) for path in files} == expected
    assert summary["bytes"] == sum(path.stat().st_size for path in files)
    # real bpp: whole file in bits over the pixels Pillow reports for the source image
    sources = {(Path(path).parent.name, Path(path).stem): path for path in samples.paths}
    bpps = []
    for path in files:
        width, height = Image.open(sources[path.parent.name, path.stem]).size
        bpps.append(8 * path.stat().st_size / (width * height))
    assert summary["bpp"] == pytest.approx(sum(bpps) / len(bpps), rel=1e-12)
    # the strings are compress()'s for the image
    first = files[0]
    compressed = compress(codec, load_rgb(sources[first.parent.name, first.stem])[None])
    assert first.stat().st_size == OVERHEAD + len(compressed.strings[0][0]) + len(compressed.strings[1][0])
    assert read_bitstream(first).y_string == compressed.strings[0][0]


def test_resumes_after_a_kill(codec, tmp_path):
    samples = tiny()
    out = tmp_path / "out"
    compress_samples(codec, samples, out, progress=False)
    files = sorted(out.rglob("*.cdlb"))
    stamps = {path: path.stat().st_mtime_ns for path in files}
    contents = {path: path.read_bytes() for path in files}
    # a killed run: some files never written, a temporary file left over by an atomic write
    for path in files[:5]:
        path.unlink()
    (files[0].parent / ".x.cdlb.tmp").write_bytes(b"partial")
    summary = compress_samples(codec, samples, out, progress=False)
    assert summary["written"] == 5 and summary["kept"] == len(samples) - 5
    assert all(path.read_bytes() == contents[path] for path in files)
    assert all(path.stat().st_mtime_ns == stamps[path] for path in files[5:])  # kept, not rewritten
    again = compress_samples(codec, samples, out, progress=False)
    assert again["written"] == 0 and again["bytes"] == summary["bytes"] and again["bpp"] == summary["bpp"]


def test_workers_write_the_same_files(codec, tmp_path):
    samples = tiny()
    compress_samples(codec, samples, tmp_path / "a", progress=False)
    summary = compress_samples(codec, samples, tmp_path / "b", workers=2, progress=False)
    assert summary["written"] == len(samples)
    for path in (tmp_path / "a").rglob("*.cdlb"):
        assert (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes() == path.read_bytes()


def test_never_replaces_foreign_files(codec, tmp_path):
    samples = tiny()
    out = tmp_path / "out"
    target = out / samples.classes[samples.labels[0]] / (Path(samples.paths[0]).stem + ".cdlb")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"my own notes")
    with pytest.raises(DataError, match="not a cdomain bitstream"):
        compress_samples(codec, samples, out, progress=False)
    assert target.read_bytes() == b"my own notes"
    target.unlink()
    compress_samples(other_codec(), samples, out, progress=False)
    with pytest.raises(DataError, match="another codec.*--overwrite"):
        compress_samples(codec, samples, out, progress=False)
    summary = compress_samples(codec, samples, out, overwrite=True, progress=False)
    assert summary["written"] == len(samples)
    assert read_bitstream(target).quality == 8


def test_clashing_names_are_refused(codec, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    samples = tiny()
    first = samples.paths[0]
    for folder in ("a", "b"):
        (tmp_path / folder / "same.jpg").write_bytes(Path(first).read_bytes())
    clash = SampleList((str(tmp_path / "a" / "same.jpg"), str(tmp_path / "b" / "same.jpg")), (0, 0), ("c",))
    with pytest.raises(DataError, match="same file name"):
        compress_samples(codec, clash, tmp_path / "out", progress=False)


def test_registry_and_bitstream_latents(codec, tmp_path):
    for split in ("train", "val"):
        compress_samples(codec, tiny(split), tmp_path / "bits" / split, progress=False)
    dataset = open_dataset(str(tmp_path / "bits"))
    assert dataset.format == "bitstream" and dataset.classes == tiny().classes
    assert open_dataset("textures-tiny").format == "jpeg"
    val = dataset.split("val")
    files = BitstreamFiles(val, codec)
    # y_hat read from a file is encode()'s on the source image, bit for bit
    sources = {(Path(path).parent.name, Path(path).stem): path for path in tiny("val").paths}
    for index in (0, len(files) - 1):
        y_hat, sigma_hat, label = files[index]
        bitstream = Path(val.paths[index])
        latents = encode(codec, load_rgb(sources[bitstream.parent.name, bitstream.stem])[None])
        assert torch.equal(y_hat, latents.y_hat[0]) and torch.equal(sigma_hat, latents.sigma_hat[0])
        assert label == val.labels[index]


def test_loader_from_bitstreams_equals_loader_from_cache(codec, tmp_path, monkeypatch):
    samples = tiny("val")
    compress_samples(codec, samples, tmp_path / "bits", progress=False)
    # batch_size=1: encode() one image at a time, as a file is decoded (batched convolutions may round otherwise)
    write_latents(codec, samples, tmp_path / "cache", split="val", batch_size=1, bitstreams=False, progress=False)

    def forbidden(*args, **kwargs):
        raise AssertionError("g_s was called")

    monkeypatch.setattr(codec.g_s, "forward", forbidden)  # before the workers start: they inherit it
    from_cache = LatentLoader(tmp_path / "cache", batch_size=4, augment=False)
    from_bits = LatentLoader(tmp_path / "bits", batch_size=4, augment=False, codec=codec, workers=2)
    # the cache lists the JPEG files in the same order as the mirrored class folders list their bitstreams
    batches = list(zip(from_cache, from_bits))
    assert len(batches) == len(from_cache) == 3
    for ((y_a, s_a), labels_a), ((y_b, s_b), labels_b) in batches:
        assert torch.equal(y_a, y_b) and torch.equal(s_a, s_b) and torch.equal(labels_a, labels_b)
    assert from_bits.bpp["bpp"] == pytest.approx(
        sum(8 * os.path.getsize(p) / (32 * 32) for p in from_bits.cache.samples.paths) / len(samples), rel=1e-12)


def test_wrong_codec_is_refused_before_reading(codec, tmp_path):
    compress_samples(codec, tiny(), tmp_path / "bits", progress=False)
    with pytest.raises(BitstreamError, match="needs codec bmshj2018-hyperprior quality 8.*not .*quality 3"):
        LatentLoader(tmp_path / "bits", batch_size=4, codec=other_codec())


def test_damaged_file_names_itself_or_is_skipped(codec, tmp_path):
    compress_samples(codec, tiny(), tmp_path / "bits", progress=False)
    victim = sorted((tmp_path / "bits").rglob("*.cdlb"))[3]
    victim.write_bytes(victim.read_bytes()[:-4])  # header intact, string cut short
    loader = LatentLoader(tmp_path / "bits", batch_size=8, augment=False, codec=codec)
    with pytest.raises(BitstreamError, match=re.escape(str(victim))):
        list(loader)
    skipping = LatentLoader(tmp_path / "bits", batch_size=8, augment=False, codec=codec, skip_bad=True)
    images = sum(len(labels) for _, labels in skipping)
    assert images == len(tiny()) - 1 and skipping.skipped_files[0].path == str(victim)
