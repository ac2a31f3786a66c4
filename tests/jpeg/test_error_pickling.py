"""JPEGError is a CdomainError and crosses process boundaries as itself.

JPEGs are decoded in DataLoader workers, so an error raised there must reach the main process
as a JPEGError (not a RuntimeError or an unpicklable object) with its source and cause.
"""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from cdomain.errors import CdomainError
from cdomain.jpeg.errors import JPEGError


def test_is_a_cdomain_error_and_a_value_error():
    error = JPEGError("a.jpg", "truncated")
    assert isinstance(error, CdomainError) and isinstance(error, ValueError)
    assert (error.source, error.cause, str(error)) == ("a.jpg", "truncated", "a.jpg: truncated")


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_round_trip(protocol):
    error = JPEGError("a.jpg", "truncated")
    copy = pickle.loads(pickle.dumps(error, protocol=protocol))
    assert type(copy) is JPEGError
    assert (copy.source, copy.cause, str(copy), copy.args) == ("a.jpg", "truncated", "a.jpg: truncated", error.args)


def test_cause_with_separator_survives():
    # The message cannot be split back into source and cause; pickling must not try to.
    error = JPEGError("dir: x/b.jpg", "corrupt: bad Huffman code")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.source, copy.cause) == ("dir: x/b.jpg", "corrupt: bad Huffman code")


def test_one_argument_is_the_whole_message():
    """How torch's DataLoader re-creates a worker's exception: ``exc_type(message)``."""
    error = JPEGError("Caught JPEGError in DataLoader worker process 0.")
    assert str(error) == "Caught JPEGError in DataLoader worker process 0."
    assert error.source is None and error.cause == str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.source, copy.cause, str(copy)) == (JPEGError, None, error.cause, str(error))


def _raise_jpeg_error(source: str, cause: str) -> None:
    raise JPEGError(source, cause)


def _describe(error: JPEGError) -> tuple[str, str | None, str, str]:
    return type(error).__name__, error.source, error.cause, str(error)


def test_round_trip_through_another_interpreter():
    """A fresh (spawned) interpreter unpickles our error and pickles its own back to us."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        # main -> child: the child unpickles the argument and describes it
        described = pool.submit(_describe, JPEGError("a.jpg", "truncated")).result(timeout=120)
        assert described == ("JPEGError", "a.jpg", "truncated", "a.jpg: truncated")
        # child -> main: the child raises, the executor pickles the exception back
        future = pool.submit(_raise_jpeg_error, "b.jpg", "not a JPEG: the data is a PNG image")
        with pytest.raises(JPEGError) as caught:
            future.result(timeout=120)
    assert type(caught.value) is JPEGError
    assert caught.value.source == "b.jpg"
    assert caught.value.cause == "not a JPEG: the data is a PNG image"
    assert str(caught.value) == "b.jpg: not a JPEG: the data is a PNG image"


class _BadJPEGs(Dataset):
    """Every item is a file that fails to decode."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> torch.Tensor:
        raise JPEGError(f"img{index}.jpg", "truncated: data ends inside the entropy-coded segment")


def test_dataloader_worker_error_reaches_the_main_process_as_jpeg_error():
    loader = DataLoader(_BadJPEGs(), batch_size=1, num_workers=1)
    with pytest.raises(JPEGError) as caught:
        next(iter(loader))
    message = str(caught.value)
    assert "Caught JPEGError in DataLoader worker process 0" in message
    assert "img0.jpg: truncated: data ends inside the entropy-coded segment" in message
    # Code that already catches ValueError (cdomain's CLIs do) still catches it.
    assert isinstance(caught.value, ValueError)
