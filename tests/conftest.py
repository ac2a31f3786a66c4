"""Shared fixtures: a private cache directory for generated datasets, one intra-op thread for
tiny tensors, the Numba CUDA module (simulator or GPU) for ``cudasim`` tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def private_data_dir(tmp_path_factory):
    """Generated datasets go to a per-session directory, never the user's cache."""
    path = tmp_path_factory.mktemp("cdomain-data")
    patcher = pytest.MonkeyPatch()
    patcher.setenv("CDOMAIN_DATA", str(path))
    yield path
    patcher.undo()


@pytest.fixture
def one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP spin-waiting on a loaded machine
    (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def cuda():
    """``numba.cuda``, when the simulator is on (NUMBA_ENABLE_CUDASIM=1) or a GPU is present."""
    import numba
    from numba import cuda

    if not (numba.config.ENABLE_CUDASIM or cuda.is_available()):
        pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 or a CUDA GPU")
    return cuda
