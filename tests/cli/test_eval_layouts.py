"""Top-5 beside top-1, the test split in cdomain-eval, and a label map used in training and eval."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from cdomain.cli.eval import main as evaluate_main
from cdomain.cli.train import main as train_main
from cdomain.checkpoint import load_checkpoint
from cdomain.train.engine import get_task
from tests.data.test_layouts import WNIDS, imagenet


def test_top5_counts_targets_among_the_five_highest_scores():
    outputs = torch.tensor([
        [9.0, 8, 7, 6, 5, 4, 3],  # target 4: 5th highest -> top-5 hit, top-1 miss
        [9.0, 8, 7, 6, 5, 4, 3],  # target 5: 6th highest -> miss
        [1.0, 2, 3, 4, 5, 6, 7],  # target 6: highest -> both
    ])
    task = get_task("classification")
    _, sums = task.loss(outputs, torch.tensor([4, 5, 6]))
    metrics = task.summarize(sums)
    assert metrics["acc"] == pytest.approx(100 / 3) and metrics["top5"] == pytest.approx(200 / 3)
    _, sums = task.loss(outputs[:, :3], torch.tensor([2, 1, 0]))  # fewer than 5 classes: always a hit
    assert task.summarize(sums)["top5"] == 100.0


def test_label_map_in_training_and_test_split_in_eval(tmp_path, capsys):
    data = tmp_path / "imagenet"
    imagenet(data, val="csv", test=True)
    mapping = tmp_path / "coarse.json"
    mapping.write_text(json.dumps({WNIDS[0]: "fish", WNIDS[1]: "fish", WNIDS[2]: "bird"}))
    run = tmp_path / "run"
    assert train_main(["--data", str(data), "--label-map", str(mapping), "--crop", "32", "--epochs", "1",
                       "--batch-size", "4", "--fbs", "4", "--quiet", "--output", str(run)]) == 0
    assert load_checkpoint(run / "model.safetensors").header.classes == ("bird", "fish")
    out = tmp_path / "sweep"
    assert evaluate_main([str(run / "model.safetensors"), "--data", str(data), "--label-map", str(mapping),
                          "--split", "test", "--qualities", "50", "--crop", "32", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "top-5" in printed and "2 coarse classes" in printed
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [int(row["images"]) for row in rows] == [6, 6]
    assert all(float(row["top5"]) == 100.0 for row in rows)  # 2 classes: the target is always in the top 5
    # without the map the checkpoint's classes do not fit the data: refused in one line
    assert evaluate_main([str(run / "model.safetensors"), "--data", str(data), "--qualities", "50",
                          "--output", str(tmp_path / "other")]) == 2
    assert "class" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --split takes val or test
        evaluate_main([str(run / "model.safetensors"), "--split", "train"])


def test_coarse_accuracy_of_a_fine_classifier():
    from cdomain.evaluate.sweep import CoarseClassification

    task = CoarseClassification("classification", "classification", "acc", True, "%", (0, 0, 1))  # a,b -> 0; c -> 1
    outputs = torch.tensor([[0.0, 5, 1], [0.0, 1, 5], [5.0, 0, 1]])  # predicts b, c, a
    _, sums = task.loss(outputs, torch.tensor([0, 2, 2]))  # truth a, c, c
    metrics = task.summarize(sums)
    # fine: only the second is right; coarse: b~a right, c right, a vs c wrong
    assert metrics["acc"] == pytest.approx(100 / 3) and metrics["coarse_acc"] == pytest.approx(200 / 3)


def test_eval_scores_a_fine_checkpoint_on_the_coarse_classes(tmp_path, capsys):
    data = tmp_path / "imagenet"
    imagenet(data, val="txt-name")
    mapping = tmp_path / "coarse.csv"
    mapping.write_text(f"{WNIDS[0]},fish\n{WNIDS[1]},fish\n{WNIDS[2]},bird\n")
    run = tmp_path / "fine"
    assert train_main(["--data", str(data), "--crop", "32", "--epochs", "1", "--batch-size", "4", "--fbs", "4",
                       "--quiet", "--output", str(run)]) == 0
    out = tmp_path / "sweep"
    assert evaluate_main([str(run / "model.safetensors"), "--data", str(data), "--label-map", str(mapping),
                          "--qualities", "50", "--crop", "32", "--output", str(out)]) == 0
    assert "coarse column" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    # a right fine prediction is a right coarse one
    assert all(float(row["coarse_accuracy"]) >= float(row["value"]) for row in rows)


def test_minc_split_number_reaches_training_and_eval(tmp_path, capsys):
    from tests.data.test_layouts import minc

    data = tmp_path / "minc-2500"
    minc(data)
    run = tmp_path / "run"
    assert train_main(["--data", str(data), "--data-split", "3", "--crop", "32", "--epochs", "1", "--batch-size", "4",
                       "--fbs", "4", "--quiet", "--output", str(run)]) == 0
    assert "(9 train / 3 val images" in capsys.readouterr().out
    out = tmp_path / "sweep"
    assert evaluate_main([str(run / "model.safetensors"), "--data", str(data), "--data-split", "3", "--split", "test",
                          "--qualities", "50", "--crop", "32", "--output", str(out)]) == 0
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [int(row["images"]) for row in rows] == [3, 3]
    assert train_main(["--data", str(data), "--data-split", "7", "--quiet", "--output", str(tmp_path / "bad")]) == 2
    assert "splits 1..5" in capsys.readouterr().err
