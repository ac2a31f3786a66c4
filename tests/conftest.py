"""Shared fixtures: a private cache directory for generated datasets."""

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
