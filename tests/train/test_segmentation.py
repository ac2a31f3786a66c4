"""Segmentation as a task: metrics against a hand-computed confusion matrix, the encoder-decoder
networks, and tiny runs of every mode through the one driver, then a quality sweep."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cdomain.checkpoint import load_checkpoint
from cdomain.cli.eval import main as eval_main
from cdomain.errors import ConfigError, DataError
from cdomain.models import create_model
from cdomain.train import TrainConfig, run
from cdomain.train.engine import TASKS, confusion_matrix, evaluate, iou_metrics

SEGMENTATION = TASKS["segmentation"]
CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("one_thread")


def _one_hot(predicted: list[list[int]], classes: int) -> torch.Tensor:
    """Scores ``[1, K, H, W]`` whose argmax is ``predicted``."""
    return torch.nn.functional.one_hot(torch.tensor([predicted]), classes).permute(0, 3, 1, 2).float()


def test_metrics_match_a_hand_computed_confusion_matrix():
    """Labels and predictions of 8 pixels (one ignored), 4 classes, class 3 in neither:

        target    0 0 1 1 / 1 2 2 255      predicted 0 1 1 1 / 2 2 0 3

    Confusion (rows true, columns predicted): [[1,1,0,0],[0,2,1,0],[1,0,1,0],[0,0,0,0]].
    IoU: class 0 = 1 / (2 + 2 - 1) = 1/3, class 1 = 2 / (3 + 3 - 2) = 1/2, class 2 =
    1 / (2 + 2 - 1) = 1/3; class 3 occurs nowhere (the ignored pixel's prediction is not
    counted), so mIoU = (1/3 + 1/2 + 1/3) / 3 = 7/18; pixel accuracy 4/7.
    """
    target = torch.tensor([[[0, 0, 1, 1], [1, 2, 2, 255]]])
    predicted = [[0, 1, 1, 1], [2, 2, 0, 3]]
    confusion = confusion_matrix(torch.tensor([predicted]), target, 4)
    assert confusion.tolist() == [[1, 1, 0, 0], [0, 2, 1, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    result = evaluate(torch.nn.Identity(), SEGMENTATION, [(_one_hot(predicted, 4), target)], CPU)
    assert result["miou"] == pytest.approx(100 * 7 / 18)
    assert result["pixel_acc"] == pytest.approx(100 * 4 / 7)
    assert result["images"] == 1


def test_metrics_add_up_over_batches():
    """Split into two batches, the confusion sums give the metrics of the whole set, not the
    mean of per-batch metrics (batch 1 alone: mIoU 100%; batch 2 alone: 0%)."""
    first = (_one_hot([[0, 0]], 2), torch.tensor([[[0, 0]]]))
    second = (_one_hot([[0, 0]], 2), torch.tensor([[[1, 1]]]))
    result = evaluate(torch.nn.Identity(), SEGMENTATION, [first, second], CPU)
    # class 0: TP 2, FP 2 -> 1/2; class 1: TP 0, FN 2 -> 0; mean 1/4
    assert result["miou"] == pytest.approx(25.0)
    assert result["pixel_acc"] == pytest.approx(50.0)
    assert iou_metrics(np.array([0.0]), np.array([0.0]), np.array([0.0]))["miou"] == 0.0


def test_loss_ignores_unlabelled_pixels_and_checks_sizes():
    scores = torch.randn(1, 3, 2, 2)
    target = torch.tensor([[[0, 1], [255, 255]]])
    loss, _ = SEGMENTATION.loss(scores, target)
    expected = torch.nn.functional.cross_entropy(scores[..., 0, :].permute(0, 2, 1).reshape(2, 3), torch.tensor([0, 1]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="differ in size"):
        SEGMENTATION.loss(torch.randn(1, 3, 4, 4), target)


@pytest.mark.parametrize("name, size", [("unet_small", 32), ("unet_small", 40), ("unet_dct_small", 32),
                                        ("unet_dct_small", 48)])
def test_networks_give_per_pixel_scores_and_train(name, size):
    model = create_model(name, num_classes=5)
    assert model.input_spec.task == "segmentation" and model.input_spec.output_stride == 1
    x = model.example_inputs(2, size)[0]
    out = model(x)
    assert out.shape == (2, 5, size, size)
    out.logsumexp(1).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.reset_classifier(3)
    assert model(x).shape == (2, 3, size, size)


def _tiny(tmp_path, name: str, **changes) -> TrainConfig:
    base = dict(task="segmentation", data="mosaic-tiny", epochs=1, batch_size=4, quiet=True, stats_images=8,
                output=str(tmp_path / name))
    return TrainConfig(**{**base, **changes})


@pytest.mark.parametrize("input", ["dct", "rgb"])
def test_standard_run_trains_and_the_checkpoint_rebuilds(tmp_path, input):
    summary = run(_tiny(tmp_path, input, input=input, epochs=2))
    assert summary["task"] == "segmentation" and 0 <= summary["final_val_miou"] <= 100
    records = [json.loads(line) for line in (tmp_path / input / "metrics.jsonl").read_text().splitlines()]
    assert {"val_miou", "val_pixel_acc", "train_miou"} <= set(records[-1])
    checkpoint = load_checkpoint(tmp_path / input / "model.safetensors")
    assert checkpoint.header.task == "segmentation" and checkpoint.input_spec.input == input
    assert len(checkpoint.header.classes) == 10


def test_cpt_and_jpeg_aug_modes(tmp_path):
    cpt = run(_tiny(tmp_path, "cpt", mode="cpt", curriculum=(75, 40, 20), target_quality=40))
    assert [phase["quality"] for phase in cpt["phases"]] == [75, 40]
    aug = run(_tiny(tmp_path, "aug", mode="jpeg-aug", aug_quality=(10, 90), requant="dct"))
    assert aug["mode"] == "jpeg-aug" and aug["final_val_miou"] is not None


def test_wrong_combinations_are_refused(tmp_path):
    with pytest.raises(DataError, match="segmentation reads mosaic"):
        run(_tiny(tmp_path, "wrong-data", data="textures-tiny"))
    with pytest.raises(ConfigError, match="resnet_dct_small"):
        run(_tiny(tmp_path, "wrong-model", model="resnet_dct_small"))


def test_quality_sweep_reports_miou(tmp_path, capsys):
    run(_tiny(tmp_path, "model", requant="dct"))
    checkpoint = tmp_path / "model" / "model.safetensors"
    assert eval_main([str(checkpoint), "--data", "mosaic-tiny", "--qualities", "10,90", "--requant", "dct",
                      "--output", str(tmp_path / "sweep")]) == 0
    rows = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [row["quality"] for row in rows] == [None, 10, 90]
    assert {row["metric"] for row in rows} == {"miou"} and all(0 <= row["value"] <= 100 for row in rows)
    assert (tmp_path / "sweep" / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    # a segmentation network does not fit a classification set
    assert eval_main([str(checkpoint), "--data", "textures-tiny", "--output", str(tmp_path / "bad")]) == 2
    assert "segmentation" in capsys.readouterr().err
