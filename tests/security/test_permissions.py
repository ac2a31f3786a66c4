"""Files and folders cdomain writes atomically get the modes the umask asks for, not tempfile's 0600/0700."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cdomain.atomic import atomic_path, atomic_write, process_umask
from cdomain.data.embedded import build_once


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=["022", "077", "002"])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_process_umask_reads_the_current_umask(umask):
    assert process_umask() == umask
    assert os.umask(umask) == umask  # reading it did not change it


def test_atomic_write_follows_umask(tmp_path, umask):
    path = atomic_write(tmp_path / "a.json", "{}")
    assert mode(path) == 0o666 & ~umask
    assert mode(path) == {0o022: 0o644, 0o077: 0o600, 0o002: 0o664}[umask]
    atomic_write(path, "{}")  # replacing keeps the umask mode too
    assert mode(path) == 0o666 & ~umask


def test_atomic_path_follows_umask(tmp_path, umask):
    target = tmp_path / "sub" / "b.bin"
    with atomic_path(target) as temporary:
        Path(temporary).write_bytes(b"x")
    assert target.read_bytes() == b"x"
    assert mode(target) == 0o666 & ~umask


def test_atomic_path_writer_that_recreates_the_file(tmp_path, umask):
    target = tmp_path / "c.bin"
    with atomic_path(target) as temporary:
        os.unlink(temporary)
        Path(temporary).write_bytes(b"y")
    assert mode(target) == 0o666 & ~umask


def test_build_once_folder_follows_umask(tmp_path, umask):
    def write(staging: Path) -> None:
        (staging / "class").mkdir()
        atomic_write(staging / "class" / "x.txt", "x")

    root = build_once(tmp_path / "data" / "set-v1", write)
    assert mode(root) == 0o777 & ~umask
    assert mode(root) == {0o022: 0o755, 0o077: 0o700, 0o002: 0o775}[umask]
    assert mode(root / "class") == 0o777 & ~umask
    assert mode(root / "class" / "x.txt") == 0o666 & ~umask
    assert [entry.name for entry in root.parent.iterdir()] == ["set-v1"]  # no staging folder left
