"""Reading a backbone's pre-trained weights from a local state-dict file (``--init-backbone``).

The file is a torchvision-format state dict (for CSRNet, torchvision's ``vgg16``: keys
``features.N.weight`` / ``features.N.bias``), saved as ``.safetensors`` or as a PyTorch
``.pth`` / ``.pt`` file. PyTorch files are read with ``torch.load(weights_only=True)`` only,
which refuses anything but tensors and plain containers, so no code in the file runs. Nothing
is downloaded: convert or fetch the file yourself. A model that can take such weights has a
``load_backbone(state_dict)`` method; the training driver calls it on a fresh model.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import Tensor

from cdomain.errors import CheckpointError

__all__ = ["SUFFIXES", "load_vgg16_convs", "read_state_dict"]

SUFFIXES = (".safetensors", ".pth", ".pt")


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The tensors of a state-dict file, by name; CheckpointError names the file and the cause."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise CheckpointError(f"{path}: a backbone file must end in {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise CheckpointError(f"{path}: backbone file not found")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load

        try:
            state = load(path.read_bytes())
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # UnpicklingError for foreign objects, RuntimeError / EOFError for damage
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CheckpointError(f"{path}: not a plain PyTorch state dict (read with weights_only=True: "
                                  f"{first[:200]})") from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: not a state dict (expected a mapping of names to tensors)")
    bad = [str(key) for key, value in state.items() if not isinstance(key, str) or not isinstance(value, Tensor)]
    if bad:
        raise CheckpointError(f"{path}: not a state dict: {', '.join(bad[:3])} {'is' if len(bad) == 1 else 'are'} "
                              f"not named tensors")
    return dict(state)


def load_vgg16_convs(convs: Sequence[torch.nn.Conv2d], state: Mapping[str, Tensor]) -> int:
    """Copy a torchvision VGG state dict's convolutions (``features.N.weight`` / ``.bias``, in
    index order) into ``convs``, the first ``len(convs)`` of them; returns the tensors copied.

    ValueError names the key whose shape does not fit, or says that the file has too few
    convolutions or that a layer has no bias (a BatchNorm network: VGG-16 weights initialise
    the published networks, which have none).
    """
    if any(conv.bias is None for conv in convs):
        raise ValueError("VGG-16 weights initialise the published front end without BatchNorm (batch_norm=False)")
    indices = sorted(int(match.group(1)) for key in state for match in [re.fullmatch(r"features\.(\d+)\.weight", key)]
                     if match and state[key].ndim == 4)
    if len(indices) < len(convs):
        raise ValueError(f"{len(indices)} convolution weights under features.N.weight, the front end has "
                         f"{len(convs)} (expected a torchvision vgg16 state dict)")
    copied = 0
    with torch.no_grad():
        for conv, index in zip(convs, indices):
            for name, target in (("weight", conv.weight), ("bias", conv.bias)):
                key = f"features.{index}.{name}"
                if key not in state:
                    raise ValueError(f"missing {key}")
                if tuple(state[key].shape) != tuple(target.shape):
                    raise ValueError(f"{key} has shape {tuple(state[key].shape)}, the front end's layer needs "
                                     f"{tuple(target.shape)}")
                target.copy_(state[key].to(target.dtype))
                copied += 1
    return copied
