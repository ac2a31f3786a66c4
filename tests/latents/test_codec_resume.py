"""cdomain-prepare codec continues an interrupted training from its last checkpoint."""

from __future__ import annotations

import pytest
import torch

from cdomain.latents.compat import compressai_available

if not compressai_available():
    pytest.skip("CompressAI is not installed", allow_module_level=True)

from cdomain.cli.prepare import main  # noqa: E402
from cdomain.latents.codec_train import saved_step, state_path  # noqa: E402
from cdomain.train.state import load_training_state  # noqa: E402

BASE = ["codec", "--data", "textures-tiny", "--channels", "8", "8", "--batch-size", "2", "--crop", "64",
        "--checkpoint-every", "2", "--eval-images", "2", "--quiet"]


def test_rerun_continues_with_the_optimizer_state(tmp_path, monkeypatch, capsys):
    output = tmp_path / "codec.safetensors"
    assert main([*BASE, "--steps", "2", "--output", str(output)]) == 0
    assert saved_step(output) == 2
    first = load_training_state(state_path(output))["optimizer"]["state"]
    assert first, "Adam moments were saved"
    capsys.readouterr()

    from cdomain.latents import codec_train

    seen = {}
    real = torch.optim.Adam.load_state_dict

    def spy(self, state):
        seen.setdefault("steps", []).append(next(iter(state["state"].values()))["step"].item() if state["state"] else 0)
        return real(self, state)

    monkeypatch.setattr(torch.optim.Adam, "load_state_dict", spy)
    assert main([*BASE, "--steps", "4", "--output", str(output)]) == 0
    assert "at step 2 of 4" in capsys.readouterr().out
    assert seen["steps"][0] == 2  # the main optimiser resumed with 2 steps of moments
    assert saved_step(output) == 4 and codec_train.saved_step(output) == 4


def test_a_finished_or_foreign_output_is_not_replaced(tmp_path, capsys):
    output = tmp_path / "codec.safetensors"
    assert main([*BASE, "--steps", "2", "--output", str(output)]) == 0
    capsys.readouterr()
    assert main([*BASE, "--steps", "2", "--output", str(output)]) == 2
    assert "training is complete" in capsys.readouterr().err
    foreign = tmp_path / "mine.safetensors"
    foreign.write_bytes(b"not mine")
    assert main([*BASE, "--steps", "2", "--output", str(foreign)]) == 2
    assert main([*BASE, "--steps", "2", "--output", str(foreign), "--overwrite"]) == 2
    assert foreign.read_bytes() == b"not mine"
    assert "choose another --output" in capsys.readouterr().err
