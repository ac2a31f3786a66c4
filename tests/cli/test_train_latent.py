"""cdomain-train --input latent: the flags reach the learned-latent training path."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

from cdomain.cli.train import main
from cdomain.latents.compat import compressai_available

if not compressai_available():
    pytest.skip("CompressAI is not installed", allow_module_level=True)

from tests.latents.conftest import CODEC_PATH  # noqa: E402

#: One quick epoch of the small registered latent classifier on textures-tiny (80 train / 40 val).
LATENT = ["--input", "latent", "--codec", str(CODEC_PATH), "--model", "cresnet_small", "--epochs", "1",
          "--batch-size", "40", "--optimizer", "adamw", "--lr", "0.01", "--quiet"]


@pytest.mark.parametrize("mode", ["standard", "joint"])
def test_latent_input_trains_through_the_cli(tmp_path, capsys, mode):
    output = tmp_path / "run"
    assert main([*LATENT, "--data", "textures-tiny", "--mode", mode, "--lambda-rate", "0.5",
                 "--output", str(output)]) == 0
    config = yaml.safe_load((output / "config.yaml").read_text())
    assert config["mode"] == mode and config["model"] == "cresnet_small" and config["lambda_rate"] == 0.5
    assert (output / "model.safetensors").exists() and (output / "state.json").is_file()
    assert json.loads((output / "state.json").read_text())  # the committed, resumable state
    assert (output / "codec.safetensors").exists() == (mode == "joint")
    summary = json.loads((output / "summary.json").read_text())
    assert summary["mode"] == mode and summary["model"] == "cresnet_small" and summary["final_val_bpp"] > 0
    capsys.readouterr()

    # resuming a finished run trains nothing and says so
    assert main(["--resume", "--output", str(output)]) == 0
    captured = capsys.readouterr()
    assert "the run is complete" in captured.out and captured.err == ""
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in records] == [1]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--input", "latent", "--data", "textures-tiny"], "--codec: latent input needs a codec file"),
        (["--input", "latent", "--codec", "c.pt", "--mode", "cpt"], "--mode: latent input takes standard or joint"),
        (["--mode", "joint"], "--mode: joint fine-tunes a codec: it needs --input latent"),
        (["--input", "latent", "--codec", "c.pt", "--crop", "32"], "--crop: latent input encodes whole images"),
    ],
)
def test_latent_flag_errors(tmp_path, monkeypatch, argv, message, capsys):
    monkeypatch.chdir(tmp_path)  # a run without --output claims its folder under ./runs
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cdomain-train: error: ") and message in err


def test_crop_is_accepted_in_joint_mode(tmp_path):
    """--crop cuts the images a joint run encodes; only standard latent mode refuses it."""
    assert main([*LATENT, "--data", "textures-tiny", "--mode", "joint", "--crop", "32",
                 "--output", str(tmp_path / "run")]) == 0
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["crop"] == 32


def test_latent_threads_and_quality_are_honoured(tmp_path):
    before = torch.get_num_threads()
    output = tmp_path / "run"
    try:
        assert main([*LATENT, "--data", "textures-tiny", "--threads", "3", "--quality", "50",
                     "--output", str(output)]) == 0
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    config = yaml.safe_load((output / "config.yaml").read_text())
    assert config["threads"] == 3 and config["quality"] == 50
    latents = output / "latents"
    assert sorted(path.name for path in latents.iterdir()) == ["train-q50", "val-q50"]  # encoded at quality 50
    index = json.loads((latents / "train-q50" / "index.json").read_text())
    assert index["complete"] and index["num_samples"] == 80
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert [record["quality"] for record in records] == [50]


def test_latent_skip_bad(tmp_path, capsys):
    from cdomain.data.embedded import embedded_dataset

    data = tmp_path / "data"
    shutil.copytree(embedded_dataset("textures-tiny"), data)
    first_class = sorted(path for path in (data / "train").iterdir() if path.is_dir())[0]
    corrupt = first_class / "zz-corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not a JPEG after all")
    argv = [*LATENT, "--data", str(data)]

    assert main([*argv, "--output", str(tmp_path / "strict")]) == 2  # without --skip-bad: one line naming the file
    assert "zz-corrupt.jpg" in capsys.readouterr().err

    output = tmp_path / "run"
    assert main([*argv, "--skip-bad", "--output", str(output)]) == 0
    assert "skipped 1 unreadable file(s)" in capsys.readouterr().out
    summary = json.loads((output / "summary.json").read_text())
    assert summary["skipped_files"] == 1 and summary["skipped"][0]["path"].endswith("zz-corrupt.jpg")
    assert json.loads((output / "latents" / "train" / "index.json").read_text())["num_samples"] == 80


def test_prepared_latent_cache_is_accepted(tmp_path):
    from cdomain.cli.prepare import main as prepare

    cache = tmp_path / "cache"
    assert prepare(["latents", "--codec", str(CODEC_PATH), "--data", "textures-tiny", "--output", str(cache),
                    "--shard-size", "32", "--quiet"]) == 0
    written = {path.relative_to(cache): path.stat().st_mtime_ns for path in cache.rglob("*") if path.is_file()}
    assert len([path for path in written if path.parent.name == "train" and path.suffix == ".safetensors"]) == 3

    output = tmp_path / "run"
    assert main([*LATENT, "--data", "textures-tiny", "--cache", str(cache), "--output", str(output)]) == 0
    assert not (output / "latents").exists()  # the run read the prepared cache, encoding nothing itself
    now = {path.relative_to(cache): path.stat().st_mtime_ns for path in cache.rglob("*") if path.is_file()}
    assert now == written  # shards of 32 kept as prepared, nothing rewritten
    assert yaml.safe_load((output / "config.yaml").read_text())["cache"] == str(cache)
    summary = json.loads((output / "summary.json").read_text())
    assert summary["final_val_bpp"] == json.loads((cache / "val" / "index.json").read_text())["bpp"] > 0
