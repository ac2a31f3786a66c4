"""cdomain-train --input latent: the flags reach the learned-latent training path."""

from __future__ import annotations

import pytest
import yaml

from cdomain.cli.train import main
from cdomain.latents.compat import compressai_available

if not compressai_available():
    pytest.skip("CompressAI is not installed", allow_module_level=True)

from tests.latents.conftest import CODEC_PATH  # noqa: E402
from tests.latents.test_cli import _TinyLatentNet  # noqa: E402


@pytest.mark.parametrize("mode", ["standard", "joint"])
def test_latent_input_trains_through_the_cli(tmp_path, monkeypatch, mode):
    from cdomain.latents import train as train_module

    monkeypatch.setattr(train_module, "create_model", lambda name, num_classes, latent_channels: _TinyLatentNet(
        num_classes, latent_channels))
    output = tmp_path / "run"
    assert main(["--input", "latent", "--codec", str(CODEC_PATH), "--data", "textures-tiny", "--mode", mode,
                 "--epochs", "1", "--batch-size", "40", "--optimizer", "adamw", "--lr", "0.01", "--quiet",
                 "--lambda-rate", "0.5", "--output", str(output)]) == 0
    config = yaml.safe_load((output / "config.yaml").read_text())
    assert config["mode"] == mode and config["model"] == "cresnet39" and config["lambda_rate"] == 0.5
    assert (output / "model.safetensors").exists()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--input", "latent"], "--codec"),
        (["--input", "latent", "--codec", "c.pt", "--mode", "cpt"], "standard or joint"),
        (["--mode", "joint"], "--input latent"),
    ],
)
def test_latent_flag_errors(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err
