"""cdomain-prepare resize: sizes, quality and subsampling kept, resume after a kill, refusals.

Expected tables come from the IJG formula written out here (T.81 Annex K tables scaled as
libjpeg's ``jpeg_quality_scaling``) and are read back with Pillow, not with cdomain.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from cdomain.cli.prepare import main
from cdomain.data.resize import MANIFEST, ResizeSettings, resize_tree
from cdomain.errors import RunFolderError
from tests.helpers import photo_like

K1_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
           14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
           49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]


def ijg_luma(quality: int) -> list[int]:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [min(255, max(1, (value * scale + 50) // 100)) for value in K1_LUMA]


def make_tree(root: Path, sizes=((120, 90), (64, 100), (75, 75)), quality: int = 80, subsampling: int = 2) -> None:
    for index, (width, height) in enumerate(sizes):
        folder = root / "train" / f"n0000000{index % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo_like(height, width, seed=index)).save(
            folder / f"img{index}.JPEG", quality=quality, subsampling=subsampling)


def test_shortest_and_longest_side(tmp_path):
    make_tree(tmp_path / "src")
    resize_tree(tmp_path / "src", tmp_path / "short", ResizeSettings(size=32))
    resize_tree(tmp_path / "src", tmp_path / "long", ResizeSettings(size=32, longest=True))
    sizes = {path.name: Image.open(path).size for path in (tmp_path / "short").rglob("*.JPEG")}
    # 120x90 -> short side 32: 43x32 (120 * 32 / 90 = 42.7); 64x100 -> 32x50; 75x75 -> 32x32
    assert sizes == {"img0.JPEG": (43, 32), "img1.JPEG": (32, 50), "img2.JPEG": (32, 32)}
    sizes = {path.name: Image.open(path).size for path in (tmp_path / "long").rglob("*.JPEG")}
    assert sizes == {"img0.JPEG": (32, 24), "img1.JPEG": (20, 32), "img2.JPEG": (32, 32)}
    # the tree is mirrored
    assert (tmp_path / "short" / "train" / "n00000001" / "img1.JPEG").is_file()


def test_downscale_is_antialiased(tmp_path):
    """A one-pixel checkerboard averages to mid-grey (nearest-neighbour would keep 0/255)."""
    board = ((np.indices((128, 128)).sum(0) % 2) * 255).astype(np.uint8)
    (tmp_path / "src").mkdir()
    Image.fromarray(np.stack([board] * 3, -1)).save(tmp_path / "src" / "board.png")
    resize_tree(tmp_path / "src", tmp_path / "out", ResizeSettings(size=32, quality=95))
    pixels = np.asarray(Image.open(tmp_path / "out" / "board.jpg").convert("L"), dtype=np.float64)
    assert abs(pixels.mean() - 127.5) < 3 and pixels.std() < 6


def test_large_jpegs_match_a_full_decode(tmp_path):
    """The reduced-scale decode of large JPEGs gives the size and, closely, the pixels of a full
    decode filtered with Lanczos (computed here with Pillow alone)."""
    from tests.helpers import psnr

    (tmp_path / "src").mkdir()
    Image.fromarray(photo_like(768, 1024, seed=3)).save(tmp_path / "src" / "big.jpg", quality=95)
    resize_tree(tmp_path / "src", tmp_path / "out", ResizeSettings(size=64, quality=95))
    with Image.open(tmp_path / "out" / "big.jpg") as image:
        assert image.size == (85, 64)
        ours = np.asarray(image.convert("RGB"))
    reference = np.asarray(Image.open(tmp_path / "src" / "big.jpg").resize((85, 64), Image.Resampling.LANCZOS))
    # measured 41.4 dB, of which re-encoding at q95 alone costs 41.5 dB; nearest-neighbour resampling gives 29 dB
    assert psnr(ours, reference) > 38


@pytest.mark.parametrize("quality", [37, 83])
def test_quality_keep_reproduces_the_source_tables(tmp_path, quality):
    make_tree(tmp_path / "src", quality=quality)
    resize_tree(tmp_path / "src", tmp_path / "out", ResizeSettings(size=48))
    for path in (tmp_path / "out").rglob("*.JPEG"):
        with Image.open(path) as image:
            assert list(image.quantization[0]) == ijg_luma(quality)


def test_fixed_quality_and_subsampling(tmp_path):
    make_tree(tmp_path / "src", subsampling=0)  # 4:4:4 sources
    resize_tree(tmp_path / "src", tmp_path / "keep", ResizeSettings(size=48, quality=50))
    resize_tree(tmp_path / "src", tmp_path / "forced", ResizeSettings(size=48, quality=50, subsampling="420"))
    for path in (tmp_path / "keep").rglob("*.JPEG"):
        with Image.open(path) as image:
            assert list(image.quantization[0]) == ijg_luma(50)
            assert JpegImagePlugin.get_sampling(image) == 0
    for path in (tmp_path / "forced").rglob("*.JPEG"):
        with Image.open(path) as image:
            assert JpegImagePlugin.get_sampling(image) == 2


def test_cmyk_png_and_label_files(tmp_path):
    source = tmp_path / "src"
    (source / "a").mkdir(parents=True)
    Image.fromarray(photo_like(40, 40)).convert("CMYK").save(source / "a" / "cmyk.JPEG", quality=90)
    Image.fromarray(photo_like(40, 40)).save(source / "a" / "disguised.JPEG", format="PNG")
    (source / "a" / "broken.JPEG").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (source / "labels.txt").write_text("a/cmyk.JPEG 0\n")
    (source / "notes.bin").write_bytes(b"\x00")
    summary = resize_tree(source, tmp_path / "out", ResizeSettings(size=32))
    for name in ("cmyk.JPEG", "disguised.JPEG"):
        with Image.open(tmp_path / "out" / "a" / name) as image:
            assert image.format == "JPEG" and image.mode == "RGB" and min(image.size) == 32
    assert (tmp_path / "out" / "labels.txt").read_text() == "a/cmyk.JPEG 0\n"
    assert summary.resized == 2 and summary.copied == 1
    assert set(summary.skipped) == {"a/broken.JPEG", "notes.bin"}
    assert summary.skipped["a/broken.JPEG"].startswith("unreadable") and summary.skipped["notes.bin"] == "not an image"
    assert summary.converted == {"CMYK JPEG": 1, "RGB PNG": 1}
    assert "2 resized (0 already done; 1 from CMYK JPEG; 1 from RGB PNG)" in summary.line()
    assert "2 skipped (1 not an image; 1 unreadable)" in summary.line()


def test_rerun_skips_complete_files(tmp_path):
    make_tree(tmp_path / "src")
    first = resize_tree(tmp_path / "src", tmp_path / "out", ResizeSettings(size=32))
    stamps = {path: path.stat().st_mtime_ns for path in (tmp_path / "out").rglob("*.JPEG")}
    second = resize_tree(tmp_path / "src", tmp_path / "out", ResizeSettings(size=32))
    assert second.reused == second.resized == first.resized == 3
    assert stamps == {path: path.stat().st_mtime_ns for path in (tmp_path / "out").rglob("*.JPEG")}


def test_resume_after_sigkill(tmp_path):
    """A run killed (SIGKILL, no manifest update) after 3 of 8 files continues from there."""
    sizes = [(40 + 4 * i, 36) for i in range(8)]
    make_tree(tmp_path / "src", sizes=sizes)
    script = textwrap.dedent(f"""
        import os, signal
        from cdomain.data.resize import ResizeSettings, resize_tree
        done = []
        def on_file(relative, status):
            done.append(relative)
            if len(done) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        resize_tree({str(tmp_path / 'src')!r}, {str(tmp_path / 'out')!r}, ResizeSettings(size=32), on_file=on_file)
    """)
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=Path(__file__).parents[2])
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()
    written = sorted((tmp_path / "out").rglob("*.JPEG"))
    assert len(written) == 3
    # what a kill during a write leaves: a temporary beside the target (and someone else's file)
    stale = tmp_path / "out" / "train" / "n00000001" / ".img7.JPEG.k3j_x9q2.tmp"
    stale.parent.mkdir(exist_ok=True)
    stale.write_bytes(b"half")
    foreign = tmp_path / "out" / "train" / "n00000001" / ".notes.tmp"
    foreign.write_bytes(b"keep")
    stamps = {path: path.stat().st_mtime_ns for path in written}
    summary = resize_tree(tmp_path / "src", tmp_path / "out", ResizeSettings(size=32))
    assert summary.resized == 8 and summary.reused == 3
    assert all(path.stat().st_mtime_ns == stamp for path, stamp in stamps.items())
    assert len(list((tmp_path / "out").rglob("*.JPEG"))) == 8
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert len(manifest["done"]) == 8
    assert not stale.exists() and foreign.read_bytes() == b"keep"


def test_refuses_files_it_did_not_write(tmp_path):
    make_tree(tmp_path / "src")
    resize_tree(tmp_path / "src", tmp_path / "out", ResizeSettings(size=32))
    foreign = tmp_path / "out" / "train" / "n00000000" / "img0.JPEG"
    foreign.unlink()
    foreign.write_bytes(b"someone else's file")
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    manifest["done"].pop("train/n00000000/img0.JPEG")
    (tmp_path / "out" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(RunFolderError, match="img0.JPEG: exists and was not written"):
        resize_tree(tmp_path / "src", tmp_path / "out", ResizeSettings(size=32))
    assert foreign.read_bytes() == b"someone else's file"


def test_refusals_are_one_line(tmp_path, capsys):
    make_tree(tmp_path / "src")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("x")
    assert main(["resize", str(tmp_path / "src"), str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["resize", str(tmp_path / "src"), str(tmp_path / "out"), "--size", "32", "--quiet"]) == 0
    assert "3 files: 3 resized" in capsys.readouterr().out
    assert main(["resize", str(tmp_path / "src"), str(tmp_path / "out"), "--size", "64"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert main(["resize", str(tmp_path / "src"), str(tmp_path / "x"), "--quality", "high"]) == 2
    assert "--quality: must be keep" in capsys.readouterr().err
    assert main(["resize", str(tmp_path / "src"), str(tmp_path / "src" / "inside")]) == 2
    assert "must not be the source folder" in capsys.readouterr().err
    assert main(["resize", str(tmp_path / "missing"), str(tmp_path / "y")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_two_workers_write_the_same_files(tmp_path):
    make_tree(tmp_path / "src", sizes=[(48, 40 + i) for i in range(6)])
    resize_tree(tmp_path / "src", tmp_path / "one", ResizeSettings(size=32))
    resize_tree(tmp_path / "src", tmp_path / "two", ResizeSettings(size=32), workers=2)
    one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.JPEG"))
    two = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*.JPEG"))
    assert one == two and len(one) == 6
    for relative in one:
        first = np.asarray(Image.open(tmp_path / "one" / relative))
        assert np.array_equal(first, np.asarray(Image.open(tmp_path / "two" / relative)))
    assert os.path.getsize(tmp_path / "two" / MANIFEST) > 0
