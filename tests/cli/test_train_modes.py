"""cdomain-train modes end to end on tiny data: cpt, npt, jpeg-aug, rgb, resume after SIGKILL, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cdomain.cli.train import main
from cdomain.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--data", "textures-tiny", "--batch-size", "16", "--fbs", "4", "--quiet"]


def records(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]


def test_cpt_cascades_and_restarts_the_schedule(tmp_path):
    output = tmp_path / "cpt"
    argv = [*TINY, "--mode", "cpt", "--curriculum", "75,40,10", "--target-quality", "40", "--epochs", "2"]
    assert main([*argv, "--output", str(output)]) == 0
    history = records(output)
    assert [(r["phase"], r["quality"], r["epoch"]) for r in history] == [(1, 75, 1), (1, 75, 2), (2, 40, 1), (2, 40, 2)]
    # A fresh schedule per phase: the learning rate after epoch 1 is the same in both phases.
    assert history[0]["lr"] == pytest.approx(history[2]["lr"]) and history[1]["lr"] < history[0]["lr"]
    first, second = load_checkpoint(output / "phase1-q75.safetensors"), load_checkpoint(output / "phase2-q40.safetensors")
    assert second.info["quality"] == 40 and first.info["quality"] == 75
    assert first.stats.mean.tolist() == second.stats.mean.tolist()  # one input normalisation for all phases


def test_npt_fine_tunes_a_checkpoint(tmp_path):
    start = tmp_path / "q75"
    assert main([*TINY, "--quality", "75", "--epochs", "1", "--output", str(start)]) == 0
    tuned = tmp_path / "npt"
    assert main([*TINY, "--mode", "npt", "--init", str(start / "model.safetensors"), "--target-quality", "10",
                 "--epochs", "1", "--output", str(tuned)]) == 0
    before = load_file(start / "model.safetensors")
    after = load_file(tuned / "model.safetensors")
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)
    assert records(tuned)[0]["quality"] == 10


def test_npt_without_init_is_refused(capsys):
    with pytest.raises(SystemExit):
        main([*TINY, "--mode", "npt", "--target-quality", "10"])
    assert "--init" in capsys.readouterr().err


def test_jpeg_aug_and_rgb_input(tmp_path):
    assert main([*TINY, "--mode", "jpeg-aug", "--aug-quality", "10,50", "--quality", "30", "--epochs", "1",
                 "--requant", "dct", "--output", str(tmp_path / "aug")]) == 0
    assert records(tmp_path / "aug")[0]["quality"] == 30
    assert main([*TINY, "--input", "rgb", "--epochs", "1", "--output", str(tmp_path / "rgb")]) == 0
    assert load_checkpoint(tmp_path / "rgb" / "model.safetensors").model.input_spec["input"] == "rgb"


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    argv = [*TINY, "--epochs", "4", "--batch-size", "8", "--seed", "3", "--stats-images", "16"]
    straight = tmp_path / "straight"
    assert main([*argv, "--output", str(straight)]) == 0

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "cdomain.cli.train", *argv, "--output", str(killed)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    state = killed / "state.json"
    while time.monotonic() < deadline and process.poll() is None:
        if state.exists() and json.loads(state.read_text())["epoch"] >= 1:
            time.sleep(0.3)  # into the next epoch
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    committed = json.loads(state.read_text())
    assert committed["epoch"] < 4, "the run finished before it could be killed"
    assert (killed / committed["weights"]).exists() and (killed / committed["optim"]).exists()
    for leftover in killed.rglob(".*.tmp"):
        assert leftover.name not in (Path(committed["weights"]).name, "model.safetensors")

    assert main(["--resume", "--output", str(killed), "--quiet"]) == 0
    assert [r["epoch"] for r in records(killed)] == [1, 2, 3, 4]
    expected, resumed = load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors")
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)


def test_resume_needs_a_run_folder(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--resume", "--output", str(tmp_path / "none")])
    assert "config.yaml" in capsys.readouterr().err


def test_torchrun_two_cpu_processes_keep_replicas_identical(tmp_path):
    output = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
         "-m", "cdomain.cli.train", *TINY, "--epochs", "2", "--batch-size", "8", "--output", str(output)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((output / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["replicas_identical"] is True
    assert [r["epoch"] for r in records(output)] == [1, 2]


def test_counting_task_with_cpt_reports_mae(tmp_path):
    output = tmp_path / "count"
    assert main(["--task", "counting", "--data", "crowd-tiny", "--batch-size", "4", "--fbs", "8", "--quiet",
                 "--mode", "cpt", "--curriculum", "75,20", "--target-quality", "20", "--epochs", "1",
                 "--optimizer", "adamw", "--lr", "1e-3", "--output", str(output)]) == 0
    history = records(output)
    assert [(r["phase"], r["quality"]) for r in history] == [(1, 75), (2, 20)]
    assert all(r["val_mae"] >= 0 and r["val_mse"] >= 0 for r in history)
    summary = json.loads((output / "summary.json").read_text())
    assert summary["task"] == "counting" and summary["best_val_mae"] == min(r["val_mae"] for r in history)
    assert load_checkpoint(output / "model.safetensors").model.input_spec["task"] == "density"


def test_counting_rejects_a_classification_model(capsys):
    assert main(["--task", "counting", "--data", "crowd-tiny", "--model", "resnet_dct_small", "--quiet"]) == 2
    assert "csrnet_dct_small" in capsys.readouterr().err
