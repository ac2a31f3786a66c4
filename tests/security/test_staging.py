"""Staging folders of killed dataset builds are removed by the next build; nothing else is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cdomain.data.embedded import build_once, remove_stale_staging, staging_prefix


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # exited and reaped: the pid names no process
    try:
        os.kill(child.pid, 0)
    except ProcessLookupError:
        return child.pid
    pytest.skip("the pid of an exited child was reused at once")


@pytest.fixture
def live_pid():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()


def make_folder(path: Path) -> Path:
    path.mkdir()
    (path / "partial.jpg").write_bytes(b"\xff\xd8")
    return path


def write_marker(staging: Path) -> None:
    (staging / "done").write_text("yes")


def test_staging_name_carries_pid(tmp_path):
    root = tmp_path / "set-v1"
    seen = []
    build_once(root, lambda staging: seen.append(staging.name) or write_marker(staging))
    assert seen[0].startswith(staging_prefix(root)) and f"-{os.getpid()}." in seen[0]
    assert (root / "done").read_text() == "yes"


def test_stale_staging_is_removed_live_and_unrelated_kept(tmp_path, live_pid):
    root = tmp_path / "set-v1"
    dead = dead_pid()
    stale = make_folder(tmp_path / f"{staging_prefix(root, dead)}abcd_123")
    live = make_folder(tmp_path / f"{staging_prefix(root, live_pid)}abcd_123")
    mine = make_folder(tmp_path / f"{staging_prefix(root)}zzzzzzzz")  # this process: a build in progress
    host_tag = staging_prefix(root, dead).split(".")[2].split("-")[0]
    other_tag = "0" * 8 if host_tag != "0" * 8 else "1" * 8
    unrelated = [
        make_folder(tmp_path / f".set-v1.{other_tag}-{dead}.abcd_123"),  # made on another host
        make_folder(tmp_path / f"{staging_prefix(tmp_path / 'other-v1', dead)}abcd_123"),  # another root
        make_folder(tmp_path / f"{staging_prefix(tmp_path / 'set-v1.5', dead)}abcd_123"),  # a longer root name
        make_folder(tmp_path / f"{staging_prefix(root, dead)[1:]}abcd_123"),  # not hidden
        make_folder(tmp_path / f"{staging_prefix(root, dead)}abcd_123.bak"),  # longer name
        make_folder(tmp_path / ".set-v1.abcd_123"),  # an older staging name without a pid
        make_folder(tmp_path / "precious"),
    ]
    stale_file = tmp_path / f"{staging_prefix(root, dead)}file_123"
    stale_file.write_text("not a folder")
    target = make_folder(tmp_path / "target")
    link = tmp_path / f"{staging_prefix(root, dead)}link_123"
    link.symlink_to(target, target_is_directory=True)

    build_once(root, write_marker)

    assert not stale.exists()
    assert (root / "done").read_text() == "yes"
    for kept in [live, mine, *unrelated, target]:
        assert (kept / "partial.jpg").exists(), kept.name
    assert stale_file.read_text() == "not a folder"
    assert link.is_symlink() and (target / "partial.jpg").exists()


def test_stale_staging_is_removed_when_root_already_exists(tmp_path):
    root = tmp_path / "set-v1"
    build_once(root, write_marker)
    stale = make_folder(tmp_path / f"{staging_prefix(root, dead_pid())}abcd_123")
    assert build_once(root, lambda staging: pytest.fail("must not rebuild")) == root
    assert not stale.exists()


def test_remove_stale_staging_without_parent(tmp_path):
    assert remove_stale_staging(tmp_path / "missing" / "set-v1") == []
