"""Density-map counting loops: the loss, MAE and MSE by hand, optimisation, and a tiny fit."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cdomain.data.crowd import crowd_split
from cdomain.data.density import density_target
from cdomain.data.loader import DCTLoader
from cdomain.models import create_model
from cdomain.train.engine import TASKS, Learner, OptimConfig, density_loss, evaluate, fit, mean_count_baseline, run_epoch

COUNTING = TASKS["counting"]

CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("one_thread")


class Echo(nn.Module):
    """Predicts its input: the predicted count of an image is the sum of its input map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _maps(counts: list[float], grid: int = 2) -> torch.Tensor:
    """``[B, 1, grid, grid]`` maps whose sums are ``counts`` (spread evenly)."""
    return torch.tensor(counts, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, grid, grid) / grid**2


def test_loss_is_half_the_squared_distance_per_image():
    pred, target = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    assert density_loss(pred, target).item() == pytest.approx(8 / (2 * 2))
    with pytest.raises(ValueError, match="output stride"):
        density_loss(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 2, 2))


def test_evaluate_mae_and_mse_by_hand():
    """Predicted counts 3, 5, 10 and 0 against 4, 5, 7 and 2, in two batches: errors -1, 0, 3, -2,
    MAE 6/4 = 1.5 and the literature's MSE sqrt(14/4)."""
    batches = [(_maps([3, 5]), _maps([4, 5])), (_maps([10, 0]), _maps([7, 2]))]
    result = evaluate(Echo(), COUNTING, batches, CPU)
    assert result["images"] == 4
    assert result["mae"] == pytest.approx(1.5)
    assert result["mse"] == pytest.approx(math.sqrt(14 / 4)) and result["rmse"] == result["mse"]
    # each image's squared map distance is its count error squared / 4 cells; halved, averaged
    assert result["loss"] == pytest.approx((1 + 0 + 9 + 4) / 4 / 2 / 4)


def test_mean_count_baseline():
    result = mean_count_baseline([10, 20, 30], [20, 26, 14])
    assert result["prediction"] == 20 and result["mae"] == pytest.approx(4.0)
    assert result["mse"] == pytest.approx(math.sqrt((0 + 36 + 36) / 3))
    with pytest.raises(ValueError, match="no training counts"):
        mean_count_baseline([], [1])


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = create_model("csrnet_dct_small", fbs=4, width=8)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(4, 12, 8, 8, generator=generator)
    targets = torch.rand(4, 1, 8, 8, generator=generator) * 0.3
    learner = Learner(model, COUNTING, OptimConfig(optimizer="adamw", lr=3e-3, weight_decay=0.0, warmup_epochs=0),
                      steps_per_epoch=3, epochs=1000, device=CPU)  # a long schedule: a near-constant rate
    losses = [run_epoch(learner, [(inputs, targets)] * 3, training=True)[0]["loss"] for _ in range(3)]
    assert losses[-1] < 0.5 * losses[0], losses


def test_fit_counting_on_crowd_tiny():
    torch.manual_seed(0)
    train_paths, train_points = crowd_split("crowd-tiny", "train")
    val_paths, val_points = crowd_split("crowd-tiny", "val")
    train = DCTLoader(train_paths, batch_size=4, fbs=4, target=density_target(train_points), augment=True, drop_last=True)
    val = DCTLoader(val_paths, batch_size=6, fbs=4, target=density_target(val_points), augment=False)
    train.stats = val.stats = train.compute_stats()
    model = create_model("csrnet_dct_small", fbs=4, width=8)
    seen = []
    learner = Learner(model, COUNTING, OptimConfig(optimizer="adamw", lr=1e-3, weight_decay=1e-4),
                      steps_per_epoch=len(train), epochs=2, device=CPU)
    history = fit(learner, train, val, epochs=2, on_epoch_end=lambda epoch, record: seen.append(epoch))
    assert seen == [1, 2] and [record["epoch"] for record in history] == [1, 2]
    keys = {"train_loss", "train_mae", "val_loss", "val_mae", "val_mse", "lr", "seconds", "train_images_per_second"}
    assert keys <= set(history[-1])
    assert all(math.isfinite(record[key]) for record in history for key in keys)
    assert history[-1]["val_mse"] >= history[-1]["val_mae"]  # a root mean square is never below the mean


@pytest.mark.slow
def test_csrnet_dct_small_beats_the_mean_count_on_crowd():
    """A few epochs on the full crowd set already count better than the trivial baseline."""
    torch.manual_seed(0)
    train_paths, train_points = crowd_split("crowd", "train")
    val_paths, val_points = crowd_split("crowd", "val")
    train = DCTLoader(train_paths, batch_size=16, fbs=16, target=density_target(train_points), augment=True,
                      drop_last=True)
    val = DCTLoader(val_paths, batch_size=50, fbs=16, target=density_target(val_points), augment=False)
    train.stats = val.stats = train.compute_stats()
    model = create_model("csrnet_dct_small")
    learner = Learner(model, COUNTING, OptimConfig(optimizer="adamw", lr=1e-3, weight_decay=1e-4),
                      steps_per_epoch=len(train), epochs=4, device=CPU)
    history = fit(learner, train, val, epochs=4)
    baseline = mean_count_baseline([len(p) for p in train_points], [len(p) for p in val_points])
    assert history[-1]["val_mae"] < 0.7 * baseline["mae"]
