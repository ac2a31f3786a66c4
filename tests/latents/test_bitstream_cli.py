"""The command-line round trip: cdomain-prepare compress, cdomain-train from the bitstream folder, cdomain-eval --codec latent."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.latents import require_compressai

require_compressai()

from cdomain.cli.eval import main as eval_main  # noqa: E402
from cdomain.cli.prepare import main as prepare_main  # noqa: E402
from cdomain.cli.train import main as train_main  # noqa: E402
from cdomain.data.registry import open_dataset  # noqa: E402
from cdomain.latents.codecs import load_codec, save_codec  # noqa: E402
from tests.latents.conftest import CODEC_PATH  # noqa: E402

TRAIN = ["--input", "latent", "--model", "cresnet_small", "--epochs", "1", "--batch-size", "4",
         "--latent-resize", "8", "--latent-crop", "6", "--optimizer", "adamw", "--lr", "0.01", "--quiet"]


def small_folder(root: Path, classes: int = 2, train: int = 4, val: int = 3) -> Path:
    """A train/val ImageFolder of the first embedded textures-tiny images (encoding is slow on a loaded machine)."""
    dataset = open_dataset("textures-tiny")
    for split, count in (("train", train), ("val", val)):
        samples = dataset.split(split)
        for label, name in enumerate(samples.classes[:classes]):
            folder = root / split / name
            folder.mkdir(parents=True)
            for path in [p for p, lab in zip(samples.paths, samples.labels) if lab == label][:count]:
                shutil.copyfile(path, folder / Path(path).name)
    return root


def second_codec(path: Path) -> Path:
    """The test codec with other weights, saved as a quality-3 codec: a second point of the sweep."""
    codec = load_codec(CODEC_PATH)
    with torch.no_grad():
        codec.h_s[0].bias.add_(0.01)
    codec.cdomain_config["quality"] = 3
    save_codec(path, codec)
    return path


def test_compress_train_eval_round_trip(tmp_path, capsys):
    data = small_folder(tmp_path / "images")
    bits = tmp_path / "bits"
    compress = ["compress", "--codec", str(CODEC_PATH), "--data", str(data), "--output", str(bits), "--quiet"]
    assert prepare_main([*compress, "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "train: 8 files (8 written, 0 already complete)" in out and "val: 6 files (6 written" in out
    files = sorted(bits.rglob("*.cdlb"))
    assert len(files) == 14
    assert {p.relative_to(bits).with_suffix("") for p in files} == \
        {p.relative_to(data).with_suffix("") for p in data.rglob("*.jpg")}  # the class folders, mirrored
    val_bpp = sum(8 * os.path.getsize(p) / (32 * 32) for p in files if p.parts[-3] == "val") / 6
    assert f"real {val_bpp:.4f} bpp" in out
    assert prepare_main(compress) == 0  # a rerun finds every file complete
    assert "train: 8 files (0 written, 8 already complete)" in capsys.readouterr().out

    run = tmp_path / "run"
    assert train_main([*TRAIN, "--data", str(bits), "--codec", str(CODEC_PATH), "--output", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["input"] == "latent" and 0 <= summary["final_val_acc"] <= 100
    assert summary["final_val_bpp"] == pytest.approx(val_bpp)
    assert summary["final_val_likelihood_bpp"] is None
    assert not (run / "latents").exists()  # read from the bitstreams, no latent cache

    other = second_codec(tmp_path / "q3.safetensors")
    sweep = tmp_path / "sweep"
    assert eval_main([str(run / "model.safetensors"), "--codec", "latent", "--codecs", f"{CODEC_PATH},{other}",
                      "--data", str(data), "--latent-resize", "8", "--latent-crop", "6", "--batch-size", "4",
                      "--output", str(sweep)]) == 0
    rows = json.loads((sweep / "sweep.json").read_text())
    assert [row["quality"] for row in rows] == [8, 3]
    assert all(row["images"] == 6 and row["metric"] == "accuracy" for row in rows)
    assert rows[0]["value"] == pytest.approx(summary["final_val_acc"])  # the training codec: the training's val
    assert rows[0]["bits_per_pixel"] == pytest.approx(val_bpp)
    for row, name in zip(rows, (CODEC_PATH.stem, "q3")):
        written = sorted((sweep / "bitstreams" / name).rglob("*.cdlb"))
        assert len(written) == 6
        assert row["mean_bytes"] == pytest.approx(sum(p.stat().st_size for p in written) / 6)
    assert (sweep / "sweep.png").stat().st_size > 0 and (sweep / "sweep.csv").is_file()


def test_round_trip_errors(tmp_path, capsys):
    data = small_folder(tmp_path / "images", train=2, val=1)
    bits = tmp_path / "bits"
    assert prepare_main(["compress", "--codec", str(CODEC_PATH), "--data", str(data), "--output", str(bits),
                         "--workers", "-1"]) == 2
    assert "--workers: must be >= 0" in capsys.readouterr().err
    assert prepare_main(["compress", "--codec", str(CODEC_PATH), "--data", str(data), "--output", str(bits),
                         "--splits", "test"]) == 2
    assert "--splits: test not in" in capsys.readouterr().err
    assert prepare_main(["compress", "--codec", str(CODEC_PATH), "--data", str(data), "--output", str(bits),
                         "--quiet"]) == 0
    capsys.readouterr()
    # the bitstreams need their codec, and name it
    assert train_main([*TRAIN, "--data", str(bits), "--output", str(tmp_path / "r1")]) == 2
    assert "bmshj2018-hyperprior quality 8" in capsys.readouterr().err
    other = second_codec(tmp_path / "q3.safetensors")
    assert train_main([*TRAIN, "--data", str(bits), "--codec", str(other), "--output", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "needs codec bmshj2018-hyperprior quality 8" in err and "not bmshj2018-hyperprior quality 3" in err
    assert "Traceback" not in err
    # bitstreams are not JPEG files
    assert train_main(["--input", "dct", "--data", str(bits), "--epochs", "1", "--quiet",
                       "--output", str(tmp_path / "r3")]) == 2
    assert "holds learned-codec bitstreams" in capsys.readouterr().err
    assert train_main([*TRAIN, "--data", str(bits), "--codec", str(CODEC_PATH), "--quality", "50",
                       "--output", str(tmp_path / "r4")]) == 2
    assert "--quality" in capsys.readouterr().err
    assert open_dataset(str(bits)).format == "bitstream"
    # eval: --codec latent needs codec files, and a network on latents
    run = tmp_path / "run"
    assert train_main([*TRAIN, "--data", str(bits), "--codec", str(CODEC_PATH), "--output", str(run)]) == 0
    capsys.readouterr()
    assert eval_main([str(run / "model.safetensors"), "--codec", "latent", "--data", str(data),
                      "--output", str(tmp_path / "e1")]) == 2
    assert "--codecs" in capsys.readouterr().err
    assert eval_main([str(run / "model.safetensors"), "--data", str(data), "--qualities", "50",
                      "--output", str(tmp_path / "e2")]) == 2
    assert "--codec latent" in capsys.readouterr().err
    assert eval_main([str(run / "model.safetensors"), "--data", str(bits), "--output", str(tmp_path / "e3")]) == 2
    assert "holds learned-codec bitstreams" in capsys.readouterr().err
    assert not (tmp_path / "e3").exists()


def test_compress_killed_midway_resumes_to_the_same_files(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from cdomain.latents.compress import compress_samples

    data = small_folder(tmp_path / "images", train=1, val=6)
    samples = open_dataset(str(data)).split("val")
    bits = tmp_path / "bits"
    command = [sys.executable, "-m", "cdomain.cli.prepare", "compress", "--codec", str(CODEC_PATH),
               "--data", str(data), "--splits", "val", "--output", str(bits), "--quiet"]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not any(bits.rglob("*.cdlb")) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    done = len(list(bits.rglob("*.cdlb")))
    assert 1 <= done < len(samples)  # killed after the first file, before the last
    summary = compress_samples(load_codec(CODEC_PATH), samples, bits / "val", progress=False)
    assert summary["kept"] >= done and summary["written"] >= 1 and summary["files"] == len(samples)
    reference = tmp_path / "reference"
    compress_samples(load_codec(CODEC_PATH), samples, reference, progress=False)
    for path in reference.rglob("*.cdlb"):
        assert (bits / "val" / path.relative_to(reference)).read_bytes() == path.read_bytes()
    assert len(list((bits / "val").rglob("*.cdlb"))) == len(samples)
