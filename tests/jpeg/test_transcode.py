"""Transcoding fallback: CMYK, RGB-coded and disguised PNG files become YCbCr JPEGs in a cache.

Fixtures are written in the exact formats real datasets hold: Pillow writes CMYK JPEGs (with
the Adobe marker, as Photoshop does) and RGB-coded ones (``keep_rgb``: Adobe transform 0), and a
PNG is saved under a ``.jpg`` name, as in ImageNet. References are Pillow's own decodes of the
sources. 12-bit files are not tested: no installed encoder writes them (Pillow and jpeglib's
libjpeg builds are 8-bit only).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cdomain.jpeg.errors import JPEGError, UnsupportedFormat
from cdomain.jpeg.reader import read_coefficients
from cdomain.jpeg.transcode import DEFAULT_QUALITY, transcoded_path
from tests.helpers import copy_embedded
from tests.jpeg.libjpeg_oracle import libjpeg_decode
from tests.jpeg.native_corpus import make_image


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(error, 1e-12)))


def one_generation(pixels: np.ndarray, quality: int) -> float:
    """PSNR of Pillow's own 4:2:0 encode-decode of ``pixels`` at ``quality``: what one more
    JPEG generation costs, the bound a transcoded copy is held to (within 1 dB)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality, subsampling="4:2:0")
    with Image.open(buffer) as decoded:
        return psnr(np.asarray(decoded), pixels)


def write_cmyk(path: Path, seed: int = 1, quality: int = 80) -> Path:
    Image.fromarray(make_image(48, 64, "photo", seed)).convert("CMYK").save(path, "JPEG", quality=quality)
    return path


def write_rgb_coded(path: Path, seed: int = 2, quality: int = 70) -> Path:
    Image.fromarray(make_image(40, 56, "photo", seed)).save(path, "JPEG", quality=quality, keep_rgb=True)
    return path


def write_png_as_jpg(path: Path, seed: int = 3, gray: bool = False) -> Path:
    image = Image.fromarray(make_image(32, 48, "photo", seed))
    (image.convert("L") if gray else image).save(path, "PNG")
    return path


@pytest.mark.parametrize("writer,cause", [
    (write_cmyk, "CMYK JPEGs"),
    (write_rgb_coded, "RGB-coded JPEGs"),
    (write_png_as_jpg, "PNG image"),
])
def test_unsupported_formats_are_refused_as_such(tmp_path, writer, cause):
    path = writer(tmp_path / "x.jpg")
    for strict in (True, False):
        with pytest.raises(UnsupportedFormat, match=cause) as caught:
            read_coefficients(path, strict=strict)
        assert caught.value.source == str(path)


def test_corrupt_files_are_not_transcodable(tmp_path):
    path = write_cmyk(tmp_path / "cmyk.jpg")
    cut = tmp_path / "cut.jpg"
    Image.fromarray(make_image(48, 64, "photo", 5)).save(cut, "JPEG")
    cut.write_bytes(cut.read_bytes()[:150])
    with pytest.raises(JPEGError) as caught:
        read_coefficients(cut)
    assert not isinstance(caught.value, UnsupportedFormat)
    assert isinstance(pytest.raises(JPEGError, read_coefficients, path).value, UnsupportedFormat)


def test_cmyk_is_transcoded_at_its_own_quality(tmp_path):
    source = write_cmyk(tmp_path / "cmyk.jpg", quality=80)
    cached = transcoded_path(source, tmp_path / "cache")
    image = read_coefficients(cached)
    assert image.color_space == "YCbCr" and image.subsampling == "4:2:0"
    assert image.quality() == 80  # the source's tables say q80 (Pillow writes IJG tables)
    with Image.open(source) as reference:  # Pillow's own CMYK -> RGB conversion
        expected = np.asarray(reference.convert("RGB"))
    assert psnr(image.to_rgb(), expected) > one_generation(expected, 80) - 1


def test_rgb_coded_and_png_are_transcoded(tmp_path):
    rgb = write_rgb_coded(tmp_path / "rgb.jpg", quality=70)
    image = read_coefficients(transcoded_path(rgb, tmp_path / "cache"))
    assert image.quality() == 70
    with Image.open(rgb) as reference:
        expected = np.asarray(reference.convert("RGB"))
    assert psnr(image.to_rgb(), expected) > one_generation(expected, 70) - 1
    png = write_png_as_jpg(tmp_path / "png.jpg")
    image = read_coefficients(transcoded_path(png, tmp_path / "cache"))
    assert image.quality() == DEFAULT_QUALITY
    with Image.open(png) as reference:
        expected = np.asarray(reference)
    assert psnr(image.to_rgb(), expected) > one_generation(expected, DEFAULT_QUALITY) - 1
    gray = write_png_as_jpg(tmp_path / "gray.jpg", gray=True)
    image = read_coefficients(transcoded_path(gray, tmp_path / "cache"))
    assert image.color_space == "gray"


def test_unusual_chroma_sampling_is_transcoded(tmp_path):
    import jpeglib

    path = tmp_path / "odd.jpg"
    image = jpeglib.from_spatial(make_image(24, 48, "photo", 6))
    image.samp_factor = ((2, 2), (1, 1), (2, 1))  # Cb and Cr sampled differently
    image.write_spatial(str(path), qt=85)
    with pytest.raises(UnsupportedFormat, match="Cb and Cr"):
        read_coefficients(path)
    copy = read_coefficients(transcoded_path(path, tmp_path / "cache"))
    assert copy.subsampling == "4:2:0" and copy.quality() == 85
    with Image.open(path) as reference:
        expected = np.asarray(reference.convert("RGB"))
    assert psnr(copy.to_rgb(), expected) > one_generation(expected, 85) - 1


def test_the_cache_is_reused_and_follows_the_source(tmp_path):
    source = write_png_as_jpg(tmp_path / "a.jpg")
    first = transcoded_path(source, tmp_path / "cache")
    stamp = first.stat().st_mtime_ns
    assert transcoded_path(source, tmp_path / "cache") == first and first.stat().st_mtime_ns == stamp
    write_png_as_jpg(source, seed=9)  # a changed source gets a new copy
    assert transcoded_path(source, tmp_path / "cache") != first


def test_an_undecodable_file_names_itself(tmp_path):
    path = tmp_path / "fake.jpg"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(UnsupportedFormat):
        read_coefficients(path)
    with pytest.raises(JPEGError, match="fake.jpg: cannot transcode"):
        transcoded_path(path, tmp_path / "cache")


def test_loader_reads_transcoded_copies_and_counts_them(tmp_path):
    from cdomain import DCTLoader

    good = tmp_path / "good.jpg"
    Image.fromarray(make_image(48, 64, "photo", 4)).save(good, "JPEG", quality=90)
    files = [str(good), str(write_cmyk(tmp_path / "cmyk.jpg")), str(write_png_as_jpg(tmp_path / "png.jpg")),
             str(write_rgb_coded(tmp_path / "rgb.jpg"))]
    loader = DCTLoader(files, batch_size=4, fbs=4, crop=32, augment=False, skip_bad=True)
    assert sum(len(labels) for _, labels in loader) == 1 and loader.skipped == 3
    for workers in (0, 1):  # the notes also cross from a worker process
        loader = DCTLoader(files, batch_size=4, fbs=4, crop=32, augment=False, workers=workers,
                           transcode=tmp_path / "cache")
        assert sum(len(labels) for _, labels in loader) == 4
        assert sorted(note.path for note in loader.transcoded_files) == sorted(files[1:])
        assert loader.skipped == 0


def test_train_and_eval_read_leniently_transcode_and_report(tmp_path, capsys, monkeypatch):
    from cdomain.cli.eval import main as eval_main
    from cdomain.cli.train import main

    monkeypatch.setenv("CDOMAIN_DATA", str(tmp_path / "cache"))
    data = tmp_path / "data"
    textures = copy_embedded(data)
    write_cmyk(data / "train" / textures.classes[0] / "cmyk.JPEG")
    write_png_as_jpg(data / "val" / textures.classes[1] / "png.JPEG")
    first = next((data / "train" / textures.classes[0]).glob("*.jpg"))
    first.write_bytes(first.read_bytes()[: first.stat().st_size * 4 // 5])  # truncated: --lenient reads it
    assert libjpeg_decode(first.read_bytes())[0] is not None
    output = tmp_path / "run"
    assert main(["--fbs", "4", "--batch-size", "16", "--epochs", "1", "--quiet",
                 "--data", str(data), "--crop", "32", "--transcode", "--lenient", "--output", str(output)]) == 0
    summary = json.loads((output / "summary.json").read_text())
    assert summary["transcoded_files"] == 2 and summary["skipped_files"] == 0
    assert {Path(item["path"]).name for item in summary["transcoded"]} == {"cmyk.JPEG", "png.JPEG"}
    assert "transcoded 2 file(s)" in capsys.readouterr().out
    assert eval_main([str(output / "model.safetensors"), "--data", str(data), "--qualities", "50",
                      "--transcode", "--crop", "32", "--output", str(tmp_path / "sweep")]) == 0
