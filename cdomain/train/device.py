"""Where training runs: the torch device for ``--device`` and the CPU thread count."""

from __future__ import annotations

import torch

from cdomain.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without it is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError("device", f"must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", f"{name}: CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError("device", f"must be auto, cpu, cuda or cuda:N, got {name!r}")
    return device


def set_threads(threads: int) -> None:
    """PyTorch intra-op threads; 0 keeps PyTorch's default (one per core)."""
    if threads > 0:
        torch.set_num_threads(threads)
