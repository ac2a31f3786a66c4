"""Resumable run state: per-epoch files, committed by one small pointer file.

After every epoch a run writes, each atomically and under a name unique to that epoch:

1. ``checkpoints/weights-p<phase>-e<epoch>.safetensors`` (a normal cdomain checkpoint),
2. ``checkpoints/optim-p<phase>-e<epoch>.pt`` (optimizer, scheduler and RNG states),

then commits them by atomically replacing ``state.json``, which names those two files, the
phase and epoch they belong to, and the best result so far. Only then are older epoch files
deleted. A run killed at any moment therefore leaves a ``state.json`` that points at complete,
matching files; anything else in ``checkpoints/`` is an uncommitted leftover and is ignored.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from cdomain.atomic import atomic_write

STATE_FILE = "state.json"
CHECKPOINT_DIR = "checkpoints"


@dataclass
class RunState:
    """Where a run stands: the last completed epoch of a phase, and the best so far."""

    phase: int = 0  # index of the phase the last completed epoch belongs to
    epoch: int = 0  # epochs completed in that phase
    weights: str = ""
    optim: str = ""
    best_metric: float | None = None
    best_phase: int = 0
    best_epoch: int = 0
    extra: dict = field(default_factory=dict)


def commit_epoch(output: Path, state: RunState, save_weights, optim_state: dict) -> RunState:
    """Write this epoch's weights (via ``save_weights(path)``) and optimizer state, then commit."""
    directory = output / CHECKPOINT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"p{state.phase}-e{state.epoch:04d}"
    state.weights = f"{CHECKPOINT_DIR}/weights-{stem}.safetensors"
    state.optim = f"{CHECKPOINT_DIR}/optim-{stem}.pt"
    save_weights(output / state.weights)
    buffer = io.BytesIO()
    torch.save(optim_state, buffer)
    atomic_write(output / state.optim, buffer.getvalue())
    atomic_write(output / STATE_FILE, json.dumps(asdict(state), indent=2))
    keep = {Path(state.weights).name, Path(state.optim).name}
    for leftover in directory.iterdir():
        if leftover.name not in keep:
            leftover.unlink(missing_ok=True)
    return state


def load_state(output: Path) -> tuple[RunState, dict]:
    """The committed state of the run in ``output`` and its optimizer/RNG states."""
    path = output / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{output}: no {STATE_FILE}; nothing to resume (was an epoch completed?)")
    state = RunState(**json.loads(path.read_text()))
    optim_state = torch.load(output / state.optim, map_location="cpu", weights_only=False)
    return state, optim_state
