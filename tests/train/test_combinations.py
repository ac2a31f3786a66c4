"""Every combination of input, mode and task that cdomain-train accepts runs end to end on a tiny
configuration, through the same driver, and writes the same run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdomain.checkpoint import read_header
from cdomain.errors import ConfigError
from cdomain.latents.compat import compressai_available
from cdomain.train import TrainConfig, run
from cdomain.train.config import INPUTS, MODES, TASKS

CODEC = str(Path(__file__).resolve().parents[1] / "latents" / "data" / "codec-n16-m24.safetensors")
MODE_OPTIONS = {"standard": {}, "jpeg-aug": {"aug_quality": (20, 60), "requant": "dct"},
                "cpt": {"curriculum": (75, 40), "target_quality": 40, "requant": "dct"},
                "npt": {"target_quality": 40, "requant": "dct"}, "joint": {"crop": 32},
                "ac": {"requant": "dct", "quality": 40}, "ttac": {"requant": "dct", "quality": 40, "task_model": ("t",)}}


DATA = {"counting": "crowd-tiny", "segmentation": "mosaic-tiny"}
METRIC = {"counting": "val_mae", "segmentation": "val_miou"}
MODEL_TASK = {"counting": "density", "segmentation": "segmentation"}


def accepted(task: str, input: str, mode: str) -> bool:
    try:
        TrainConfig(task=task, input=input, mode=mode, codec="c", init="i", **MODE_OPTIONS[mode])
        return True
    except ConfigError:
        return False


COMBINATIONS = [(t, i, m) for t in TASKS for i in INPUTS for m in MODES if accepted(t, i, m)]


def tiny(task: str, input: str, mode: str, output: Path, **extra) -> TrainConfig:
    options = {"task": task, "input": input, "mode": mode, "epochs": 1, "quiet": True, "output": str(output),
               "data": DATA.get(task, "textures-tiny"), "fbs": 4, "stats_images": 8,
               "batch_size": 8, **MODE_OPTIONS[mode], **extra}
    if input == "latent":
        options.update(codec=CODEC, model="cresnet_small")
    return TrainConfig(**options)


def test_the_accepted_combinations_are_the_documented_ones():
    # {dct, rgb} x 4 JPEG modes x 3 tasks, latent standard and joint, artifact correction (dct) x 2 modes x 3 tasks
    assert len(COMBINATIONS) == 2 * 4 * 3 + 2 + 2 * 3
    assert ("classification", "latent", "joint") in COMBINATIONS and ("counting", "latent", "standard") not in COMBINATIONS
    assert ("segmentation", "latent", "standard") not in COMBINATIONS


@pytest.mark.parametrize("task,input,mode", COMBINATIONS)
def test_combination_runs_end_to_end(tmp_path, task, input, mode):
    if input == "latent" and not compressai_available():
        pytest.skip("CompressAI is not installed")
    extra = {}
    if mode in ("npt", "ttac"):
        start = tmp_path / "start"
        run(tiny(task, input, "standard", start))
        extra["init" if mode == "npt" else "task_model"] = str(start / "model.safetensors")
    output = tmp_path / "run"
    summary = run(tiny(task, input, mode, output, **extra))
    metric = "val_loss" if mode in ("ac", "ttac") else METRIC.get(task, "val_acc")
    assert summary[f"final_{metric}"] is not None
    assert json.loads((output / "summary.json").read_text())["phases"] == summary["phases"]
    assert len(summary["phases"]) == (2 if mode == "cpt" else 1)
    header = read_header(output / "model.safetensors")
    assert header.input_spec.input == input
    assert header.task == ("correction" if mode in ("ac", "ttac") else MODEL_TASK.get(task, "classification"))
    assert (output / "state.json").is_file() and (output / "best.safetensors").is_file()
    assert TrainConfig.from_yaml(output / "config.yaml") == TrainConfig.from_mapping(
        {**tiny(task, input, mode, output, **extra).resolved().__dict__, "output": str(output)})
    if task == "counting":
        assert summary["mean_count_baseline"]["mae"] > 0
