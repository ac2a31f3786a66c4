"""Real crowd dataset layouts end to end: for each format a fixture, CSRNet trained with CPT
through cdomain-train, evaluated on the official test split with cdomain-eval; the CLI
errors of the new flags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from cdomain.checkpoint import load_checkpoint
from cdomain.cli.eval import main as evaluate_main
from cdomain.cli.train import main as train_main
from cdomain.data.crowd_formats import read_crowd_folder
from cdomain.data.loader import RGBLoader
from cdomain.train.run_folder import read_metrics

from ..data.crowd_fixtures import WRITERS

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(tmp_path: Path, width: int = 4) -> Path:
    """A reduced-width CSRNet (model_args are YAML only)."""
    path = tmp_path / "small.yaml"
    path.write_text(f"model_args: {{width: {width}}}\n")
    return path


def _train(tmp_path: Path, data: Path, output: Path, *extra: str) -> None:
    argv = ["--config", str(_config(tmp_path)), "--task", "counting", "--input", "rgb", "--model", "csrnet",
            "--data", str(data), "--mode", "cpt", "--curriculum", "90", "--target-quality", "90", "--epochs", "1",
            "--crop", "32", "--batch-size", "2", "--lr", "1e-4", "--quiet", "--output", str(output), *extra]
    assert train_main(argv) == 0


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_cpt_phase_then_test_split_evaluation(tmp_path, name, capsys):
    data = tmp_path / ("part_A" if name == "shanghaitech" else name)
    written = WRITERS[name](data)
    run = tmp_path / "run"
    _train(tmp_path, data, run)
    summary = json.loads((run / "summary.json").read_text())
    assert [phase["name"] for phase in summary["phases"]] == ["q90"] and summary["phases"][0]["epochs"] == 1
    folder = read_crowd_folder(data)
    assert summary["mean_count_baseline"]["prediction"] == pytest.approx(
        np.mean([len(p) for p in folder.splits["train"][1]]))
    out = tmp_path / "eval"
    assert evaluate_main([str(run / "model.safetensors"), "--data", str(data), "--split", "test", "--qualities", "90",
                          "--output", str(out)]) == 0
    rows = json.loads((out / "sweep.json").read_text())
    assert {row["quality"] for row in rows} == {None, 90}
    assert all(row["images"] == len(written["test"]) and row["mse"] >= row["value"] for row in rows)
    assert " mse " in capsys.readouterr().out


def test_test_split_figures_are_the_papers_mae_and_mse(tmp_path):
    """MAE = mean |predicted - annotated count|, MSE = sqrt(mean squared error), over whole test
    images, computed here image by image from the checkpoint and the annotations."""
    data = tmp_path / "qnrf"
    written = WRITERS["qnrf"](data)
    run = tmp_path / "run"
    _train(tmp_path, data, run)
    out = tmp_path / "eval"
    assert evaluate_main([str(run / "model.safetensors"), "--data", str(data), "--split", "test", "--qualities", "90",
                          "--output", str(out)]) == 0
    original = next(row for row in json.loads((out / "sweep.json").read_text()) if row["quality"] is None)
    checkpoint = load_checkpoint(run / "model.safetensors")
    errors = []
    for path in sorted((data / "Test").glob("*.jpg")):
        loader = RGBLoader([str(path)], batch_size=1, augment=False, stats=checkpoint.stats)
        (inputs, _), = list(loader)
        with torch.no_grad():
            predicted = float(checkpoint.model.eval()(inputs).sum())
        errors.append(predicted - len(written["test"][path.name]))
    errors = np.asarray(errors)
    assert original["value"] == pytest.approx(np.abs(errors).mean(), rel=1e-4)
    assert original["mse"] == pytest.approx(np.sqrt((errors**2).mean()), rel=1e-4)


def test_schedule_restarts_every_cpt_phase(tmp_path):
    data = tmp_path / "jhu"
    WRITERS["jhu"](data)
    run = tmp_path / "run"
    _train(tmp_path, data, run, "--curriculum", "90,70", "--target-quality", "70", "--epochs", "2",
           "--schedule", "exp:0.5", "--warmup-epochs", "0")
    records = read_metrics(run / "metrics.jsonl")
    assert [(r["phase"], r["epoch"]) for r in records] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    lr = [r["lr"] for r in records]  # the rate after each epoch: 1e-4 x 0.5^epoch, from 1e-4 again per phase
    assert lr == pytest.approx([5e-5, 2.5e-5, 5e-5, 2.5e-5])


def test_init_backbone_through_the_cli(tmp_path, capsys):
    data = tmp_path / "points"
    WRITERS["points"](data)
    state, index, channels = {}, 0, 3
    for layer in [4, 4, "M", 8, 8, "M", 16, 16, 16, "M", 32, 32, 32]:  # vgg16 at width 4 (keys as torchvision's)
        if layer == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.full((layer, channels, 3, 3), 0.01 * (index + 1))
        state[f"features.{index}.bias"] = torch.zeros(layer)
        channels, index = layer, index + 2
    file = tmp_path / "vgg16.safetensors"
    save_file(state, str(file))
    run = tmp_path / "run"
    _train(tmp_path, data, run, "--init-backbone", str(file), "--lr", "1e-12")  # a rate too small to move weights
    model = load_checkpoint(run / "model.safetensors").model
    first = next(m for m in model.frontend.modules() if isinstance(m, torch.nn.Conv2d))
    assert torch.allclose(first.weight, state["features.0.weight"], atol=1e-6)
    assert "backbone initialised from" in capsys.readouterr().out  # logged
    # a model without a backbone, and files that are not state dicts: one line naming the flag or file
    assert train_main(["--data", "textures-tiny", "--epochs", "1", "--quiet", "--output", str(tmp_path / "r2"),
                       "--init-backbone", str(file)]) == 2
    assert "init-backbone" in capsys.readouterr().err
    assert train_main(["--config", str(_config(tmp_path)), "--task", "counting", "--input", "rgb", "--model", "csrnet",
                       "--data", str(data), "--quiet", "--output", str(tmp_path / "r3"),
                       "--init-backbone", str(tmp_path / "absent.pth")]) == 2
    assert "absent.pth: backbone file not found" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--format", "ucf"], "--format: invalid choice"),
    (["--density", "gauss"], "--density: invalid choice"),
    (["--val-fraction", "1.5"], "--val-fraction: must be in (0, 1)"),
    (["--sigma", "0"], "--sigma: must be > 0"),
    (["--schedule", "linear"], "--schedule: unknown schedule"),
])
def test_flag_errors_are_one_line(tmp_path, argv, message, capsys):
    try:
        code = train_main(["--task", "counting", "--quiet", "--output", str(tmp_path / "r"), *argv])
    except SystemExit as exit:  # argparse's usage error for a value outside the choices
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_folder_in_no_known_layout_is_named(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert train_main(["--task", "counting", "--data", str(tmp_path / "empty"), "--quiet",
                       "--output", str(tmp_path / "r")]) == 2
    assert "not a crowd dataset folder in a known layout" in capsys.readouterr().err


def test_whole_images_of_varied_size_train_at_batch_1(tmp_path):
    """No --crop and --batch-size 1: whole images (64x48 and 80x64 here) one at a time."""
    data = tmp_path / "part_B"
    WRITERS["shanghaitech"](data)
    run = tmp_path / "run"
    assert train_main(["--config", str(_config(tmp_path)), "--task", "counting", "--input", "rgb", "--model", "csrnet",
                       "--data", str(data), "--epochs", "1", "--batch-size", "1", "--lr", "1e-4", "--quiet",
                       "--output", str(run)]) == 0
    record = read_metrics(run / "metrics.jsonl")[-1]
    folder = read_crowd_folder(data)
    assert len(folder.splits["val"][0]) == 1 and folder.density == "fixed"  # Part B: 10% of 6, fixed sigma
    assert record["train_images_per_second"] > 0 and np.isfinite(record["val_mae"])
