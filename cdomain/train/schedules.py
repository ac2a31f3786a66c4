"""Learning-rate schedules by name (``--schedule``), as factors of the peak rate per step.

Every schedule starts with the linear warm-up from lr/10 (``--warmup-epochs``, 0 for none);
after it:

- ``cosine``: cosine decay to zero over the phase (the default);
- ``cosine:FLOOR``: cosine decay to ``FLOOR`` x the peak rate (e.g. ``cosine:0.01``);
- ``exp[:GAMMA]``: the rate is multiplied by ``GAMMA`` after every epoch (default 0.99, the
  per-epoch decay of the curriculum study);
- ``step[:EPOCHS[:GAMMA]]``: multiplied by ``GAMMA`` every ``EPOCHS`` epochs (default 30, 0.1).

Schedules are built per phase, so in ``--mode cpt`` each phase restarts its schedule. This
module has no PyTorch import: the config validates names with :func:`parse_schedule`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

__all__ = ["SCHEDULES", "Schedule", "parse_schedule", "schedule_factor"]

SCHEDULES = ("cosine", "exp", "step")


@dataclass(frozen=True)
class Schedule:
    kind: str
    floor: float = 0.0  # cosine
    gamma: float = 0.99  # exp, step
    every: int = 30  # step: epochs between decays


def parse_schedule(text: str) -> Schedule:
    """``"cosine"``, ``"cosine:0.01"``, ``"exp:0.99"``, ``"step:30:0.1"`` as a :class:`Schedule`;
    ValueError with the accepted forms otherwise."""
    forms = "cosine, cosine:FLOOR, exp, exp:GAMMA, step, step:EPOCHS, step:EPOCHS:GAMMA"
    parts = str(text).strip().split(":")
    kind, args = parts[0], parts[1:]
    try:
        if kind == "cosine" and len(args) <= 1:
            floor = float(args[0]) if args else 0.0
            if not 0 <= floor < 1:
                raise ValueError(f"the cosine floor must be in [0, 1), got {floor}")
            return Schedule("cosine", floor=floor)
        if kind == "exp" and len(args) <= 1:
            gamma = float(args[0]) if args else 0.99
            if not 0 < gamma <= 1:
                raise ValueError(f"the decay factor must be in (0, 1], got {gamma}")
            return Schedule("exp", gamma=gamma)
        if kind == "step" and len(args) <= 2:
            every = int(args[0]) if args else 30
            gamma = float(args[1]) if len(args) > 1 else 0.1
            if every < 1 or not 0 < gamma <= 1:
                raise ValueError(f"step needs EPOCHS >= 1 and GAMMA in (0, 1], got {every}, {gamma}")
            return Schedule("step", gamma=gamma, every=every)
    except ValueError as error:
        if "must" in str(error) or "needs" in str(error):
            raise
        raise ValueError(f"cannot read {text!r}; expected one of {forms}") from None
    raise ValueError(f"unknown schedule {text!r}; expected one of {forms}")


def schedule_factor(schedule: Schedule, steps_per_epoch: int, epochs: int, warmup_epochs: float) -> Callable[[int], float]:
    """``factor(step)``: the multiple of the peak rate at optimiser step ``step`` of a phase."""
    steps_per_epoch = max(1, steps_per_epoch)
    total = max(1, steps_per_epoch * epochs)
    warmup = min(total - 1, int(warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return 0.1 + 0.9 * step / max(1, warmup)
        if schedule.kind == "cosine":
            progress = (step - warmup) / max(1, total - warmup)
            cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
            return schedule.floor + (1.0 - schedule.floor) * cosine
        epoch = step // steps_per_epoch
        if schedule.kind == "exp":
            return schedule.gamma ** epoch
        return schedule.gamma ** (epoch // schedule.every)

    return factor
