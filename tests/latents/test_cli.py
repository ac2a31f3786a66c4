"""cdomain-prepare end to end on textures-tiny, and the latent training path."""

from __future__ import annotations

import json

import pytest

from tests.latents import require_compressai

require_compressai()

from cdomain.checkpoint import load_checkpoint  # noqa: E402
from cdomain.cli.prepare import main  # noqa: E402
from cdomain.errors import ConfigError  # noqa: E402
from cdomain.latents.codecs import load_codec  # noqa: E402
from cdomain.latents.loader import LatentLoader  # noqa: E402
from tests.latents.conftest import CODEC_PATH  # noqa: E402


def test_prepare_codec(tmp_path, capsys):
    codec_path = tmp_path / "codec.safetensors"
    argv = ["codec", "--data", "textures-tiny", "--quality", "2", "--channels", "8", "12", "--steps", "6",
            "--batch-size", "4", "--checkpoint-every", "4", "--eval-images", "4", "--output", str(codec_path), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "real" in out and "PSNR" in out and str(codec_path) in out
    codec = load_codec(codec_path)
    assert codec.cdomain_config == {"architecture": "bmshj2018-hyperprior", "quality": 2, "N": 8, "M": 12}

    cache = tmp_path / "latents"
    argv = ["latents", "--codec", str(codec_path), "--data", "textures-tiny", "--output", str(cache),
            "--shard-size", "32", "--no-bitstreams", "--quiet"]
    assert main(argv) == 0
    loader = LatentLoader(cache / "train", batch_size=8)
    (y_hat, _), _ = next(iter(loader))
    assert y_hat.shape == (8, 12, 28, 28)  # the new codec's M


def test_prepare_latents(tmp_path, capsys):
    cache = tmp_path / "latents"
    argv = ["latents", "--codec", str(CODEC_PATH), "--data", "textures-tiny", "--output", str(cache),
            "--shard-size", "32", "--no-bitstreams", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "train: 80 images in 3 shards" in out and "val: 40 images in 2 shards" in out
    index = json.loads((cache / "val" / "index.json").read_text())
    assert index["complete"] and index["bpp"] is None and index["likelihood_bpp"] > 0
    loader = LatentLoader(cache / "train", batch_size=8)
    (y_hat, sigma_hat), labels = next(iter(loader))
    assert y_hat.shape == sigma_hat.shape == (8, 24, 28, 28) and labels.shape == (8,)
    assert main(argv) == 0  # a rerun finds every shard done


def test_prepare_errors(tmp_path, capsys):
    assert main(["codec", "--quality", "9", "--data", "textures-tiny", "--output", str(tmp_path / "c")]) == 2
    assert "cdomain-prepare: error: --quality: must be in 1..8" in capsys.readouterr().err
    assert main(["latents", "--codec", str(tmp_path / "none.pth.tar"), "--data", "textures-tiny",
                 "--output", str(tmp_path / "l")]) == 2
    assert "none.pth.tar" in capsys.readouterr().err
    assert main(["latents", "--codec", str(CODEC_PATH), "--data", str(tmp_path / "nowhere"),
                 "--output", str(tmp_path / "l")]) == 2
    assert "nowhere" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["standard", "joint"])
def test_latent_training_glue(tmp_path, mode):
    from cdomain.train import TrainConfig, run

    epochs = 2 if mode == "standard" else 1
    summary = run(TrainConfig(
        input="latent", data="textures-tiny", codec=str(CODEC_PATH), mode=mode, model="cresnet_small", epochs=epochs,
        batch_size=40, latent_resize=8, latent_crop=6, optimizer="adamw", lr=1e-2, output=str(tmp_path / "run"),
        quiet=True,
    ))
    assert summary["mode"] == mode and summary["model"] == "cresnet_small" and 0 <= summary["final_val_acc"] <= 100
    assert summary["final_val_bpp"] > 0 and summary["final_val_likelihood_bpp"] > 0
    names = {path.name for path in (tmp_path / "run").iterdir()}
    expected = {"best.safetensors", "config.yaml", "metrics.jsonl", "model.safetensors", "summary.json",
                "phase1-orig.safetensors", "phase1-orig-best.safetensors", "state.json", "checkpoints"}
    expected |= {"latents"} if mode == "standard" else {"codec.safetensors", "best-codec.safetensors"}
    assert names == expected
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in records] == list(range(1, epochs + 1))
    assert all(record["val_bpp"] > 0 for record in records)
    checkpoint = load_checkpoint(tmp_path / "run" / "model.safetensors")
    assert checkpoint.header.name == "cresnet_small" and checkpoint.input_spec.channels == (24, 24)
    if mode == "joint":
        assert load_codec(tmp_path / "run" / "codec.safetensors").M == 24
        assert load_codec(tmp_path / "run" / "best-codec.safetensors").M == 24


def test_latent_training_needs_a_codec(tmp_path):
    from cdomain.train import TrainConfig, run

    with pytest.raises(ConfigError, match="cdomain-prepare codec") as caught:
        run(TrainConfig(input="latent", data="textures-tiny", model="cresnet_small", output=str(tmp_path), quiet=True))
    assert caught.value.option == "codec"
    with pytest.raises(ConfigError, match="unknown") as caught:
        TrainConfig.from_mapping({"input": "latent", "codec": str(CODEC_PATH), "colour": "blue"})
    assert "colour" in str(caught.value)


@pytest.mark.slow
def test_latent_training_cresnet39(tmp_path):
    from cdomain.train import TrainConfig, run

    summary = run(TrainConfig(
        input="latent", data="textures-tiny", codec=str(CODEC_PATH), model="cresnet39", epochs=1, batch_size=40,
        latent_resize=4, latent_crop=3, optimizer="adamw", lr=1e-3, output=str(tmp_path / "run"), quiet=True,
    ))
    assert summary["mode"] == "standard" and summary["final_val_bpp"] > 0
    checkpoint = load_checkpoint(tmp_path / "run" / "model.safetensors")
    assert checkpoint.header.name == "cresnet39" and checkpoint.model.input_spec.channels == (24, 24)


@pytest.mark.slow
def test_latent_training_joint_mode(tmp_path):
    from cdomain.train import TrainConfig, run

    summary = run(TrainConfig(
        input="latent", data="textures-tiny", codec=str(CODEC_PATH), model="cresnet39", mode="joint", epochs=1,
        batch_size=20, latent_resize=4, latent_crop=3, optimizer="adamw", lr=1e-3, output=str(tmp_path / "run"),
        quiet=True,
    ))
    assert summary["mode"] == "joint" and summary["final_val_bpp"] > 0
    codec = load_codec(tmp_path / "run" / "codec.safetensors")
    assert codec.M == 24
