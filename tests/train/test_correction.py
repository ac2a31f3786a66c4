"""Artifact correction (--mode ac|ttac): frozen task networks, losses that fall, CLI use and transfer."""

from __future__ import annotations

import copy
import csv

import pytest
import torch

from cdomain.checkpoint import load_checkpoint, read_header
from cdomain.cli.eval import main as evaluate_main
from cdomain.cli.train import main as train_main
from cdomain.data.correction import PairLoader
from cdomain.data.embedded import embedded_dataset
from cdomain.data.folder import image_folder
from cdomain.data.quality import RandomQuality
from cdomain.models import create_model
from cdomain.train.correction import CorrectionLearner, load_task_models
from cdomain.train.engine import OptimConfig

TINY = ["--data", "textures-tiny", "--batch-size", "16", "--quiet"]


@pytest.fixture(scope="module")
def task_models(tmp_path_factory):
    """Two small classifiers trained on the uncompressed tiny textures: DCT (fbs 8) and RGB."""
    root = tmp_path_factory.mktemp("task-models")
    paths = {}
    for name, extra in (("dct", ["--fbs", "8"]), ("rgb", ["--input", "rgb"])):
        assert train_main([*TINY, "--epochs", "2", "--output", str(root / name), *extra]) == 0
        paths[name] = root / name / "model.safetensors"
    return paths


def fixed_batch():
    """One batch of tiny validation crops re-encoded at quality 10, with their originals."""
    samples = image_folder(embedded_dataset("textures-tiny") / "val")
    loader = PairLoader(samples, transform=RandomQuality(10, 10, "pixel"), batch_size=16)
    return next(iter(loader))


def learner(mode, checkpoints, lr=2e-3):
    torch.manual_seed(0)
    corrector = create_model("artifact_corrector", width=32, blocks=2, embed=16)
    return CorrectionLearner(corrector, checkpoints, OptimConfig("adamw", lr, 0.0, warmup_epochs=0), mode=mode,
                             steps_per_epoch=40, epochs=1, device=torch.device("cpu"))


def batch_loss(learner, batch):
    learner.begin_epoch(0, False)
    with torch.no_grad():
        return float(learner.loss(batch[0])[0])


def test_ttac_keeps_task_weights_and_reduces_logit_l1(task_models):
    checkpoints = load_task_models([task_models["dct"]], (), None, torch.device("cpu"))
    before = copy.deepcopy(checkpoints[0].model.state_dict())  # parameters and BatchNorm statistics
    ttac, batch = learner("ttac", checkpoints), fixed_batch()
    start = batch_loss(ttac, batch)
    assert start > 0  # q10 changes the logits
    for _ in range(25):
        ttac.begin_epoch(0, True)
        ttac.train_batch(batch)
    assert batch_loss(ttac, batch) < 0.8 * start
    after = checkpoints[0].model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)  # bit for bit


def test_off_the_shelf_ac_reduces_reconstruction_error():
    ac, batch = learner("ac", []), fixed_batch()
    start = batch_loss(ac, batch)
    for _ in range(25):
        ac.begin_epoch(0, True)
        ac.train_batch(batch)
    assert batch_loss(ac, batch) < 0.95 * start


def test_feature_loss_variant_trains(task_models):
    checkpoints = load_task_models([task_models["rgb"]], (), None, torch.device("cpu"))
    ttac = learner("ttac", checkpoints)
    ttac.ttac_loss = "features"
    batch = fixed_batch()
    start = batch_loss(ttac, batch)
    for _ in range(10):
        ttac.begin_epoch(0, True)
        ttac.train_batch(batch)
    assert batch_loss(ttac, batch) < start


def test_cli_ac_then_multi_head_ttac_then_corrected_sweep_with_transfer(task_models, tmp_path, capsys):
    ac = tmp_path / "ac"
    assert train_main([*TINY, "--mode", "ac", "--epochs", "1", "--output", str(ac), "--task-model",
                       str(task_models["dct"]), "--quality", "20"]) == 0
    header = read_header(ac / "model.safetensors")
    assert header.kind == "model" and header.task == "correction" and header.name == "artifact_corrector"
    ttac = tmp_path / "ttac"
    both = f"{task_models['dct']},{task_models['rgb']}"  # multi-head: both frozen networks in one loss
    assert train_main([*TINY, "--mode", "ttac", "--epochs", "1", "--init", str(ac / "model.safetensors"),
                       "--task-model", both, "--quality", "20", "--output", str(ttac)]) == 0
    assert read_header(ttac / "model.safetensors").info["task_models"] == both.split(",")
    assert "val loss" in capsys.readouterr().out
    # transfer: a corrector tuned against the DCT network, in front of the RGB one
    out = tmp_path / "sweep"
    assert evaluate_main([str(task_models["rgb"]), "--data", "textures-tiny", "--qualities", "10",
                          "--correct", str(ttac / "model.safetensors"), "--output", str(out)]) == 0
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [r["quality"] for r in rows] == ["", "10"] and all(0 <= float(r["value"]) <= 100 for r in rows)
    # the original files skip the correction: the same accuracy as a sweep without it
    plain = tmp_path / "plain"
    assert evaluate_main([str(task_models["rgb"]), "--data", "textures-tiny", "--qualities", "10",
                          "--output", str(plain)]) == 0
    assert list(csv.DictReader((plain / "sweep.csv").open()))[0]["value"] == rows[0]["value"]


def test_wrong_checkpoints_are_one_line_errors(task_models, tmp_path, capsys):
    assert evaluate_main([str(task_models["rgb"]), "--data", "textures-tiny", "--correct",
                          str(task_models["dct"]), "--output", str(tmp_path / "e")]) == 2
    assert "not a correction network" in capsys.readouterr().err
    assert train_main([*TINY, "--mode", "ttac", "--output", str(tmp_path / "t")]) == 2
    assert "needs the frozen task network" in capsys.readouterr().err
