"""Fixtures: the small trained test codec (see make_test_codec.py) and test images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cdomain.latents.compat import compressai_available
from tests.helpers import photo_like

CODEC_PATH = Path(__file__).parent / "data" / "codec-n16-m24.safetensors"


@pytest.fixture
def codec():
    """A fresh copy of the trained test codec (N=16, M=24), in eval mode with coder tables."""
    if not compressai_available():
        pytest.skip("CompressAI is not installed")
    from cdomain.latents.codecs import load_codec

    return load_codec(CODEC_PATH)


def photos(count: int, size: int, seed: int = 0) -> torch.Tensor:
    """``count`` photo-like RGB images ``[count, 3, size, size]`` in [0, 1]."""
    images = [photo_like(size, size, seed=seed + i) for i in range(count)]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255.0)
