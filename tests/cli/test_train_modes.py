"""cdomain-train modes end to end on tiny data: cpt, npt, jpeg-aug, rgb, DDP, counting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cdomain.cli.train import main
from tests.helpers import free_port
from cdomain.checkpoint import load_checkpoint

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
    assert main([*TINY, "--mode", "npt", "--target-quality", "10"]) == 2
    assert "--init" in capsys.readouterr().err


def test_jpeg_aug_and_rgb_input(tmp_path):
    assert main([*TINY, "--mode", "jpeg-aug", "--aug-quality", "10,50", "--quality", "30", "--epochs", "1",
                 "--requant", "dct", "--output", str(tmp_path / "aug")]) == 0
    assert records(tmp_path / "aug")[0]["quality"] == 30
    assert main([*TINY, "--input", "rgb", "--epochs", "1", "--output", str(tmp_path / "rgb")]) == 0
    assert load_checkpoint(tmp_path / "rgb" / "model.safetensors").model.input_spec["input"] == "rgb"


def test_resume_needs_a_run_folder(tmp_path, capsys):
    assert main(["--resume", "--output", str(tmp_path / "none")]) == 2
    assert "config.yaml" in capsys.readouterr().err


def test_torchrun_two_cpu_processes_keep_replicas_identical(tmp_path):
    output = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
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
    assert all(r["val_mse"] >= r["val_mae"] > 0 for r in history)  # a root mean square is at least the mean
    summary = json.loads((output / "summary.json").read_text())
    target = [r["val_mae"] for r in history if r["phase"] == 2]  # best and final are the target quality's
    assert summary["task"] == "counting" and summary["best_val_mae"] == min(target)
    assert [p["quality"] for p in summary["phases"]] == [75, 20]
    assert load_checkpoint(output / "model.safetensors").model.input_spec["task"] == "density"


def test_counting_rejects_a_classification_model(capsys):
    assert main(["--task", "counting", "--data", "crowd-tiny", "--model", "resnet_dct_small", "--quiet"]) == 2
    assert "csrnet_dct_small" in capsys.readouterr().err
