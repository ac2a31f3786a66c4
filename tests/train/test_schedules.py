"""Learning-rate schedules (--schedule): factors by hand, parsing, and the optimiser using them."""

from __future__ import annotations

import math

import pytest
import torch

from cdomain.errors import ConfigError
from cdomain.train.config import TrainConfig
from cdomain.train.engine import OptimConfig, build_optimizer
from cdomain.train.schedules import Schedule, parse_schedule, schedule_factor


def test_parse_forms_and_defaults():
    assert parse_schedule("cosine") == Schedule("cosine", floor=0.0)
    assert parse_schedule("cosine:0.01").floor == 0.01
    assert parse_schedule("exp") == Schedule("exp", gamma=0.99)
    assert parse_schedule("exp:0.9").gamma == 0.9
    assert parse_schedule("step") == Schedule("step", gamma=0.1, every=30)
    assert parse_schedule("step:5:0.5") == Schedule("step", gamma=0.5, every=5)
    for bad in ("linear", "cosine:x", "exp:1.5", "step:0", "cosine:1", "exp:0.9:2"):
        with pytest.raises(ValueError):
            parse_schedule(bad)


def test_exponential_decay_per_epoch_by_hand():
    factor = schedule_factor(parse_schedule("exp:0.99"), steps_per_epoch=4, epochs=10, warmup_epochs=0)
    assert [factor(step) for step in (0, 3, 4, 7, 8, 39)] == pytest.approx([1, 1, 0.99, 0.99, 0.99**2, 0.99**9])


def test_step_decay_by_hand():
    factor = schedule_factor(parse_schedule("step:3:0.1"), steps_per_epoch=2, epochs=9, warmup_epochs=0)
    assert [factor(step) for step in (0, 5, 6, 11, 12, 17)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_cosine_with_a_floor_ends_at_the_floor():
    plain = schedule_factor(parse_schedule("cosine"), steps_per_epoch=10, epochs=2, warmup_epochs=0)
    floored = schedule_factor(parse_schedule("cosine:0.05"), steps_per_epoch=10, epochs=2, warmup_epochs=0)
    assert plain(0) == floored(0) == 1.0
    assert plain(20) == pytest.approx(0.0) and floored(20) == pytest.approx(0.05)
    assert floored(10) == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_warm_up_comes_first_for_every_schedule():
    for text in ("cosine", "exp", "step"):
        factor = schedule_factor(parse_schedule(text), steps_per_epoch=10, epochs=5, warmup_epochs=1)
        assert factor(0) == pytest.approx(0.1) and factor(5) == pytest.approx(0.55)


def test_the_optimiser_follows_the_schedule():
    model = torch.nn.Linear(2, 1)
    optimizer, scheduler = build_optimizer(model, OptimConfig("adamw", lr=0.1, weight_decay=0.0, warmup_epochs=0,
                                                              schedule="exp:0.5"), steps_per_epoch=2, epochs=3)
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_config_checks_the_schedule():
    assert TrainConfig(schedule="exp:0.99").schedule == "exp:0.99"
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(schedule="linear")
