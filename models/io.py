"""Saving and loading model weights as safetensors, with the model's configuration inside.

The file's metadata holds ``model_config(model)`` and ``model.input_spec`` as JSON, so
``load_model(path)`` rebuilds the network without repeating its flags, and a loader can read
the expected input (``read_metadata(path)["input_spec"]``) without building the model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from cdomain.atomic import atomic_path

from .registry import create_model, model_config

__all__ = ["save_model", "load_model", "read_metadata"]

_CONFIG_KEY = "cdomain.model_config"
_SPEC_KEY = "cdomain.input_spec"


def save_model(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model``'s state dict and configuration to ``path`` (atomically: temp file + rename)."""
    path = Path(path)
    metadata = {
        _CONFIG_KEY: json.dumps(model_config(model), sort_keys=True),
        _SPEC_KEY: json.dumps(getattr(model, "input_spec", {}), sort_keys=True),
    }
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as temporary:
        save_file(tensors, temporary, metadata=metadata)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """``{"config": ..., "input_spec": ...}`` stored by :func:`save_model`."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for unreadable headers
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    if _CONFIG_KEY not in meta:
        raise ValueError(f"{path}: no model configuration in the safetensors metadata "
                         f"(was it written by cdomain.models.save_model?)")
    spec = json.loads(meta[_SPEC_KEY]) if _SPEC_KEY in meta else {}
    if isinstance(spec.get("channels"), list):
        spec["channels"] = tuple(spec["channels"])
    if isinstance(spec.get("stride"), list):
        spec["stride"] = tuple(spec["stride"])
    return {"config": json.loads(meta[_CONFIG_KEY]), "input_spec": spec}


def load_model(path: str | os.PathLike, **overrides: Any) -> nn.Module:
    """Rebuild the model saved at ``path`` and load its weights (strictly).

    ``overrides`` replace stored arguments that do not change parameter shapes (e.g.
    ``drop_rate``).
    """
    config = read_metadata(path)["config"]
    config.update(overrides)
    state = load_file(str(path))
    # Build on the meta device (no random initialisation of weights about to be replaced),
    # then adopt the loaded tensors.
    with torch.device("meta"):
        model = create_model(**config)
    model.load_state_dict(state, strict=True, assign=True)
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:  # a tensor outside the state dict (none today): fall back to a full build
        model = create_model(**config)
        model.load_state_dict(state, strict=True)
    return model
