"""Models built once per session at their default arguments; tests that change weights copy them."""

from __future__ import annotations

import functools

import pytest
import torch

from cdomain.models import count_params, create_model


@functools.lru_cache(maxsize=None)
def built(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name)


def image_size_for(model: torch.nn.Module) -> int:
    """Pixels per side of the test image: 64 for the CPU-scale networks (an 8x8 block grid),
    32 for the ImageNet-scale ones, where that already reaches a 1x1 grid at the last stage."""
    return 64 if count_params(model) < 2_000_000 else 32


def inputs_for(model: torch.nn.Module, batch_size: int = 4, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return model.example_inputs(batch_size, image_size_for(model), generator=g)


@pytest.fixture
def seeded():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="package")
def one_thread():
    """The test tensors are tiny: one intra-op thread avoids OpenMP spin-waiting on a loaded machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
