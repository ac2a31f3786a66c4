"""Atomic file writes: write to a temporary sibling, fsync, then rename over the target.

A reader (or a resumed run) therefore sees either the old complete file or the new complete
file, never a half-written one. Temporary names start with a dot and end in ``.tmp`` so that
nothing mistakes them for real outputs.

``tempfile`` creates its files 0600 and its folders 0700 whatever the umask, which would make
a shared ``$CDOMAIN_DATA`` cache or run folder unreadable to everyone but its writer. Files
written here therefore get the mode an ordinary ``open()`` would give them, ``0o666 & ~umask``,
and :func:`share_directory` gives a ``tempfile.mkdtemp`` folder ``0o777 & ~umask`` before it is
renamed into place. The umask is read from ``/proc/self/status`` where there is one (no change
to the process state); elsewhere it is read once, at import, with the ``os.umask`` set-and-restore
dance under a lock.

Folders are created with :func:`make_folders`, which notes each one it makes; a command that
fails takes back those still empty (:func:`tidy_on_failure`), and never a folder it did not make.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator

_UMASK_LOCK = threading.Lock()


def _read_umask_by_setting() -> int:
    with _UMASK_LOCK:
        old = os.umask(0o077)  # briefly restrictive, never permissive, should another thread create a file
        os.umask(old)
    return old


def _read_umask_from_proc() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8) & 0o777
    except (OSError, ValueError, IndexError):
        pass
    return None


_IMPORT_UMASK = _read_umask_from_proc()
if _IMPORT_UMASK is None:
    _IMPORT_UMASK = _read_umask_by_setting()


def process_umask() -> int:
    """The process's current umask (from ``/proc`` where available, else as read at import)."""
    current = _read_umask_from_proc()
    return _IMPORT_UMASK if current is None else current


def file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask: ``0o666 & ~umask``."""
    return 0o666 & ~process_umask()


def directory_mode() -> int:
    """The mode ``mkdir()`` gives a new folder under the current umask: ``0o777 & ~umask``."""
    return 0o777 & ~process_umask()


def share_directory(path: str | os.PathLike[str]) -> None:
    """Give a folder made by ``tempfile.mkdtemp`` (0700) the usual mode, ``0o777 & ~umask``."""
    os.chmod(path, directory_mode())


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (text is encoded as UTF-8); return the path.

    The file gets mode ``0o666 & ~umask``, like a file created with ``open()``.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """A temporary sibling path for writers that only take a file name; renamed over ``path``
    when the block ends without an error, removed otherwise. The file gets mode
    ``0o666 & ~umask`` (not ``tempfile``'s 0600)."""
    path = Path(path)
    make_folders(path.parent)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield temporary
        os.chmod(temporary, file_mode())  # after the writer, in case it replaced the file
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: The folders created so far inside the innermost :func:`tidy_on_failure` block (None outside one).
_CREATED: ContextVar[list[Path] | None] = ContextVar("cdomain_created_folders", default=None)


@contextlib.contextmanager
def tidy_on_failure() -> Iterator[list[Path]]:
    """Take back, if the block raises, the folders it created (:func:`make_folders`,
    :func:`note_created`) that are still empty, innermost first.

    A failed command then leaves no empty ``runs/``, run or output folder behind (every command
    runs in such a block: :func:`cdomain.cli.errors.run_command`). Only folders this
    block created are candidates, and ``rmdir`` removes a folder only while it is empty, so a
    folder that existed before, or anything written into one meanwhile (by this run or another
    process), stays; so does every folder above one that stays.
    """
    created: list[Path] = []
    token = _CREATED.set(created)
    try:
        yield created
    except BaseException:
        for folder in reversed(created):
            with contextlib.suppress(OSError):  # not empty (or gone): it stays as it is
                folder.rmdir()
        raise
    finally:
        _CREATED.reset(token)


def note_created(folder: Path) -> None:
    """Note ``folder`` as made by this command (for :func:`tidy_on_failure`)."""
    created = _CREATED.get()
    if created is not None:
        created.append(folder)


def make_folders(path: str | os.PathLike[str]) -> Path:
    """``mkdir -p path``, noting each folder it creates, outermost first (:func:`tidy_on_failure`)."""
    path = Path(path)
    missing = []
    folder = path
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # made meanwhile by someone else: not this command's to take back
        note_created(folder)
    return path
