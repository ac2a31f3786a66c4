"""A run killed with SIGKILL mid-epoch resumes to bit-identical final weights, for every input kind.

The killed run is a child process; the reference is the same configuration run straight
through. The comparison is exact (``torch.equal``) over the network's state dict, and for
joint fine-tuning over the codec's too.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cdomain.cli.train import main
from cdomain.latents.compat import compressai_available

ROOT = Path(__file__).resolve().parents[2]
CODEC = ROOT / "tests" / "latents" / "data" / "codec-n16-m24.safetensors"
COMMON = ["--data", "textures-tiny", "--batch-size", "8", "--seed", "3", "--quiet", "--epochs", "5"]
KINDS = {
    "dct": ["--fbs", "4", "--stats-images", "16"],
    "rgb": ["--input", "rgb", "--stats-images", "16"],
    "latent": ["--input", "latent", "--model", "cresnet_small", "--codec", str(CODEC)],
    "joint": ["--input", "latent", "--mode", "joint", "--model", "cresnet_small", "--codec", str(CODEC),
              "--crop", "32"],
}


def epochs_of(output: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (output / "metrics.jsonl").read_text().splitlines()]


def kill_after_first_epoch(argv: list[str], output: Path) -> dict:
    """Run the CLI in a child process and SIGKILL it once an epoch is committed; the state then."""
    process = subprocess.Popen([sys.executable, "-m", "cdomain.cli.train", *argv, "--output", str(output)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = output / "state.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if state.exists():
            try:
                if json.loads(state.read_text())["epoch"] >= 1:
                    break
            except ValueError:
                pass
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return json.loads(state.read_text())


@pytest.mark.parametrize("kind", list(KINDS))
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, kind):
    if kind in ("latent", "joint") and not compressai_available():
        pytest.skip("CompressAI is not installed")
    argv = [*COMMON, *KINDS[kind]]
    straight = tmp_path / "straight"
    assert main([*argv, "--output", str(straight)]) == 0

    killed = tmp_path / "killed"
    committed = kill_after_first_epoch(argv, killed)
    assert 1 <= committed["epoch"] < 5, "the run finished before it could be killed"
    assert all((killed / name).exists() for name in committed["files"].values())
    if kind == "joint":
        assert "codec" in committed["files"]

    assert main(["--resume", "--output", str(killed), "--quiet"]) == 0
    assert epochs_of(killed) == [1, 2, 3, 4, 5]
    names = ["model.safetensors"] + (["codec.safetensors"] if kind == "joint" else [])
    for name in names:
        expected, resumed = load_file(straight / name), load_file(killed / name)
        assert expected.keys() == resumed.keys()
        different = [key for key in expected if not torch.equal(expected[key], resumed[key])]
        assert not different, f"{name}: {different[:5]} differ after resuming"
    # only the last epoch's committed files remain: every earlier one was deleted
    state = json.loads((killed / "state.json").read_text())
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == sorted(
        Path(name).name for name in state["files"].values())


def test_resuming_a_finished_run_says_so_and_can_continue(tmp_path, capsys):
    output = tmp_path / "run"
    argv = ["--data", "textures-tiny", "--batch-size", "16", "--fbs", "4", "--quiet", "--epochs", "1"]
    assert main([*argv, "--output", str(output)]) == 0
    summary = (output / "summary.json").read_text()
    capsys.readouterr()
    assert main(["--resume", "--output", str(output)]) == 0
    assert "the run is complete" in capsys.readouterr().out
    assert (output / "summary.json").read_text() == summary  # not rewritten with nulls
    assert main(["--resume", "--output", str(output), "--epochs", "2"]) == 0
    assert epochs_of(output) == [1, 2]
    assert json.loads((output / "summary.json").read_text())["phases"][0]["epochs"] == 2


def test_resume_refuses_to_change_the_training_configuration(tmp_path, capsys):
    output = tmp_path / "run"
    assert main(["--data", "textures-tiny", "--batch-size", "16", "--fbs", "4", "--quiet", "--epochs", "1",
                 "--output", str(output)]) == 0
    capsys.readouterr()
    assert main(["--resume", "--output", str(output), "--fbs", "8"]) == 2
    assert "--fbs: cannot change when resuming" in capsys.readouterr().err
