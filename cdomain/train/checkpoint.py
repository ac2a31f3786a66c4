"""Model checkpoints: one safetensors file with the weights, the input statistics and the metadata
needed to rebuild the model (registry name and arguments, input spec, class names).

``load_checkpoint`` therefore needs no flags: the file says which model, which input layout and
FBS size, and how to normalise inputs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from cdomain.atomic import atomic_write
from cdomain.data.dct_transforms import ChannelStats
from cdomain.models import create_model, model_config

FORMAT = "cdomain-checkpoint-1"
_STATS_MEAN, _STATS_STD = "input_stats.mean", "input_stats.std"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model and everything saved beside its weights."""

    model: torch.nn.Module
    stats: ChannelStats | None
    classes: tuple[str, ...]
    info: dict = field(default_factory=dict)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    *,
    stats: ChannelStats | None = None,
    classes: tuple[str, ...] = (),
    info: dict | None = None,
) -> Path:
    """Write ``model`` (and its input statistics) to ``path`` atomically."""
    tensors = {name: value.detach().cpu().contiguous().clone() for name, value in model.state_dict().items()}
    if stats is not None:
        tensors[_STATS_MEAN] = torch.from_numpy(stats.mean.copy())
        tensors[_STATS_STD] = torch.from_numpy(stats.std.copy())
    metadata = {
        "format": FORMAT,
        "model": json.dumps(model_config(model)),
        "input_spec": json.dumps(model.input_spec),
        "classes": json.dumps(list(classes)),
        "info": json.dumps(info or {}),
    }
    return atomic_write(path, save_safetensors(tensors, metadata=metadata))


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model saved at ``path`` and load its weights."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise FileNotFoundError(f"{path}: cannot read checkpoint: {error.strerror or error}") from error
    try:
        tensors = load_safetensors(data)
        metadata = _metadata(data)
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{path}: not a readable safetensors checkpoint ({error})") from error
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: not a cdomain checkpoint (format {metadata.get('format')!r})")
    config = json.loads(metadata["model"])
    model = create_model(**config)
    stats = None
    if _STATS_MEAN in tensors:
        stats = ChannelStats(tensors.pop(_STATS_MEAN).numpy(), tensors.pop(_STATS_STD).numpy())
    model.load_state_dict(tensors)
    model.to(map_location)
    return Checkpoint(
        model=model,
        stats=stats,
        classes=tuple(json.loads(metadata["classes"])),
        info=json.loads(metadata.get("info", "{}")),
    )


def _metadata(data: bytes) -> dict:
    """The ``__metadata__`` of a safetensors blob (its header is 8-byte length + JSON)."""
    header_size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_size])
    return header.get("__metadata__", {})
