"""Resumable run state: per-epoch files, committed by one small pointer file, nothing pickled.

After every epoch a run writes, each atomically and under a name unique to that epoch:

1. ``checkpoints/weights-p<phase>-e<epoch>.safetensors``: the network (a cdomain checkpoint),
2. ``checkpoints/codec-p<phase>-e<epoch>.safetensors``: the codec, in joint fine-tuning,
3. ``checkpoints/optim-p<phase>-e<epoch>.safetensors``: optimiser, schedule and RNG states,
   as tensors plus a JSON description of their structure (:func:`pack` / :func:`unpack`),

then commits them by atomically replacing ``state.json``, which names those files, the phase
and epoch they belong to, and the best results so far. Only then are the previous epoch's
files deleted: exactly the files the previous ``state.json`` named, never anything else in
the folder. A run killed at any moment leaves a ``state.json`` that points at complete,
matching files.

Reading is defensive: ``state.json`` is validated field by field, every file it names must
be a plain name inside ``checkpoints/`` (``../x`` or an absolute path is refused), and the
optimiser file is read with safetensors and JSON only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from cdomain.atomic import atomic_write
from cdomain.errors import CheckpointError

STATE_FILE = "state.json"
CHECKPOINT_DIR = "checkpoints"
FORMAT = "cdomain-state-2"


@dataclass
class RunState:
    """Where a run stands: the last completed epoch of a phase, its files, and the best so far."""

    phase: int = 0  # index of the phase the last completed epoch belongs to
    epoch: int = 0  # epochs completed in that phase
    files: dict[str, str] = field(default_factory=dict)  # role ("weights", "optim", "codec") -> checkpoints/<name>
    best: list = field(default_factory=list)  # per phase: [metric, epoch] of its best epoch, or None
    complete: bool = False  # every phase has run all its epochs

    def best_of(self, phase: int) -> tuple[float | None, int]:
        entry = self.best[phase] if phase < len(self.best) else None
        return (None, 0) if entry is None else (float(entry[0]), int(entry[1]))


def commit_epoch(output: Path, state: RunState, writers: dict[str, Callable[[Path], Any]]) -> RunState:
    """Write this epoch's files (``writers[role](path)`` each), then commit them in ``state.json``."""
    directory = output / CHECKPOINT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    previous = dict(state.files)
    stem = f"p{state.phase}-e{state.epoch:04d}"
    files = {}
    for role, write in writers.items():
        relative = f"{CHECKPOINT_DIR}/{role}-{stem}.safetensors"
        write(output / relative)
        files[role] = relative
    state.files = files
    atomic_write(output / STATE_FILE, json.dumps({"format": FORMAT, **asdict(state)}, indent=2))
    for relative in previous.values():
        if relative not in files.values():
            (output / relative).unlink(missing_ok=True)
    return state


def load_state(output: Path) -> RunState:
    """The committed state of the run in ``output``, validated; CheckpointError names the problem."""
    path = output / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; nothing to resume (was an epoch completed?)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable run state ({error})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cdomain run state (format {data.get('format') if isinstance(data, dict) else None!r})")
    try:
        state = RunState(**{key: value for key, value in data.items() if key != "format"})
    except TypeError as error:
        raise CheckpointError(f"{path}: unexpected fields in the run state ({error})") from None
    _check_types(path, state)
    for role, relative in state.files.items():
        confined(output, relative, path)
    return state


def _check_types(path: Path, state: RunState) -> None:
    def ok_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 30

    if not (ok_int(state.phase) and ok_int(state.epoch)):
        raise CheckpointError(f"{path}: phase and epoch must be non-negative integers")
    if not isinstance(state.complete, bool):
        raise CheckpointError(f"{path}: complete must be true or false")
    if not isinstance(state.files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in state.files.items()):
        raise CheckpointError(f"{path}: files must map roles to file names")
    if not isinstance(state.best, list) or not all(
        entry is None or (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], (int, float))
                          and ok_int(entry[1])) for entry in state.best):
        raise CheckpointError(f"{path}: best must be a list of [metric, epoch] pairs")


def confined(output: Path, relative: str, source: Path) -> Path:
    """``output / relative`` if it is a plain file name inside ``output/checkpoints``; else CheckpointError."""
    parts = Path(relative).parts
    if (Path(relative).is_absolute() or len(parts) != 2 or parts[0] != CHECKPOINT_DIR
            or parts[1] in ("", ".", "..") or "\\" in relative):
        raise CheckpointError(f"{source}: refuses file name {relative!r}: run files must lie in {CHECKPOINT_DIR}/")
    path = output / relative
    if path.is_symlink() or not path.resolve().is_relative_to((output / CHECKPOINT_DIR).resolve()):
        raise CheckpointError(f"{source}: refuses {relative!r}: it leads outside the run folder")
    return path


# ---------------------------------------------------------------------- optimiser states


def save_training_state(path: Path, state: dict) -> Path:
    """Write nested optimiser/schedule/RNG state (dicts, lists, tensors, numbers) as safetensors."""
    tensors: dict[str, torch.Tensor] = {}
    structure = pack(state, tensors)
    return atomic_write(path, save_safetensors(tensors, metadata={"structure": json.dumps(structure)}))


def load_training_state(path: Path) -> dict:
    """Read what :func:`save_training_state` wrote; CheckpointError for anything else."""
    try:
        data = path.read_bytes()
        tensors = load_safetensors(data)
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + size])
        structure = json.loads(header["__metadata__"]["structure"])
        return unpack(structure, tensors)
    except CheckpointError:
        raise
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read training state: {error.strerror or error}") from None
    except Exception as error:  # safetensors, JSON and structure errors alike
        raise CheckpointError(f"{path}: not a cdomain training state ({type(error).__name__}: {error})") from None


def pack(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON structure for ``value``; tensors go into ``tensors`` and are referenced by name."""
    if isinstance(value, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = value.detach().cpu().contiguous().clone()
        return {"tensor": name}
    if isinstance(value, dict):
        return {"dict": [[pack(key, tensors), pack(item, tensors)] for key, item in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"list" if isinstance(value, list) else "tuple": [pack(item, tensors) for item in value]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    raise TypeError(f"cannot store {type(value).__name__} in a training state")


def unpack(structure: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`pack`; ValueError for a malformed structure."""
    if not isinstance(structure, dict) or len(structure) != 1:
        raise ValueError("malformed training-state structure")
    (kind, payload), = structure.items()
    if kind == "tensor":
        return tensors[payload]
    if kind == "value":
        if payload is not None and not isinstance(payload, (bool, int, float, str)):
            raise ValueError("malformed value in training state")
        return payload
    if kind in ("list", "tuple"):
        items = [unpack(item, tensors) for item in payload]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        return {unpack(key, tensors): unpack(item, tensors) for key, item in payload}
    raise ValueError(f"unknown entry {kind!r} in training state")
