"""Embedded datasets: generated on first use as real JPEG files, cached, written atomically.

The default dataset, ``"textures"``, is written in ImageFolder layout::

    $CDOMAIN_DATA/textures-v1/{train,val}/<class name>/<index>.jpg

with IJG quality 90 and 4:2:0 chroma subsampling (libjpeg's defaults). The whole tree is built in
a temporary sibling directory and renamed into place in one step, so an interrupted generation
never leaves a dataset that looks complete.

A staging folder is named ``.<root name>.<host>-<pid>.<random>`` (``host``: 8 hex digits of a
hash of the host name), so that a generation that was killed can be recognised later: each
:func:`build_once` removes the staging folders of its own root that were made on this host by
a process that no longer runs. Nothing else is touched: not other roots' folders, not folders
of other hosts (a shared cache on a network file system), not names of any other shape.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from cdomain.atomic import share_directory
from cdomain.data.textures import CLASSES, render

#: Environment variable naming the cache directory for generated datasets.
DATA_DIR_ENV = "CDOMAIN_DATA"


@dataclass(frozen=True)
class EmbeddedSpec:
    """How an embedded dataset is generated: images per class and split, size, JPEG quality."""

    version: int
    train_per_class: int
    val_per_class: int
    size: int
    quality: int


EMBEDDED: dict[str, EmbeddedSpec] = {
    "textures": EmbeddedSpec(version=1, train_per_class=120, val_per_class=40, size=64, quality=90),
    "textures-tiny": EmbeddedSpec(version=1, train_per_class=8, val_per_class=4, size=32, quality=90),
    # large enough that a codec's latents carry the texture (256 px: 16x16 latents, resized to 32 for cResNet)
    "textures-256": EmbeddedSpec(version=1, train_per_class=40, val_per_class=20, size=256, quality=90),
    "textures-256-tiny": EmbeddedSpec(version=1, train_per_class=3, val_per_class=2, size=256, quality=90),
}


def data_dir() -> Path:
    """The cache directory for generated datasets (``$CDOMAIN_DATA`` or ``~/.cache/cdomain``)."""
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "cdomain"


def embedded_root(name: str) -> Path:
    """Where embedded dataset ``name`` lives (or will live once generated)."""
    if name not in EMBEDDED:
        raise KeyError(f"unknown embedded dataset {name!r}; known: {', '.join(EMBEDDED)}")
    return data_dir() / f"{name}-v{EMBEDDED[name].version}"


def embedded_dataset(name: str, *, progress: bool | None = None) -> Path:
    """Return the root of embedded dataset ``name``, generating it on first use.

    ``progress`` shows a progress bar while generating (default: when stderr is a terminal).
    """
    spec = EMBEDDED[name]
    if progress is None:
        progress = sys.stderr.isatty()
    return build_once(embedded_root(name), lambda staging: _write_dataset(staging, spec, name, progress))


def build_once(root: Path, write: Callable[[Path], None]) -> Path:
    """Return the directory ``root``, first building it with ``write(staging)`` if it is missing.

    ``write`` fills an empty temporary sibling of ``root``, which is then renamed to ``root`` in
    one step, so an interrupted build never leaves a tree that looks complete. When two
    processes build the same tree at once, the first rename wins and the other build is dropped.
    The tree gets the usual folder mode (``0o777 & ~umask``), not ``mkdtemp``'s 0700. Staging
    folders left by killed builds of the same root are removed (:func:`remove_stale_staging`).
    """
    remove_stale_staging(root)
    if root.is_dir():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=staging_prefix(root), dir=root.parent))
    try:
        write(staging)
        share_directory(staging)
        try:
            staging.rename(root)
        except OSError:
            if not root.is_dir():  # not a concurrent generator finishing first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def staging_prefix(root: Path, pid: int | None = None) -> str:
    """The name prefix of ``root``'s staging folders made by process ``pid`` (default: this one)
    on this host; ``tempfile.mkdtemp`` appends 8 random characters."""
    return f".{root.name}.{_host_tag()}-{os.getpid() if pid is None else pid}."


def _staging_pattern(root: Path) -> re.Pattern[str]:
    # mkdtemp's random part is 8 characters of [a-z0-9_]: no dots, so no other root's name can match
    return re.compile(rf"\.{re.escape(root.name)}\.(?P<host>[0-9a-f]{{8}})-(?P<pid>[0-9]+)\.[a-z0-9_]{{8}}")


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a pid we could have written: treat as in use, never remove
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    return True


def remove_stale_staging(root: Path) -> list[Path]:
    """Remove the staging folders of ``root`` whose building process (on this host) has died.

    Only real folders (not links) named exactly like :func:`build_once`'s staging folders for
    ``root``, with this host's tag and the pid of a process that no longer exists, are removed.
    Returns the removed paths.
    """
    pattern, host, removed = _staging_pattern(root), _host_tag(), []
    try:
        entries = list(os.scandir(root.parent))
    except OSError:  # no parent yet, or unreadable: nothing to clean
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or match["host"] != host:
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        if _process_alive(int(match["pid"])):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.lexists(entry.path):
            removed.append(Path(entry.path))
    return removed


def _write_dataset(root: Path, spec: EmbeddedSpec, name: str, progress: bool) -> None:
    import jpeglib

    jobs = []
    for split, count, offset in (("train", spec.train_per_class, 0), ("val", spec.val_per_class, 1 << 20)):
        for label, class_name in enumerate(CLASSES):
            (root / split / class_name).mkdir(parents=True)
            jobs.extend((split, label, class_name, offset + index) for index in range(count))
    for split, label, class_name, seed in tqdm(
        jobs, desc=f"generating {name}", unit="img", disable=not progress, leave=False
    ):
        image = render(label, seed, spec.size)
        jpeglib.from_spatial(image).write_spatial(str(root / split / class_name / f"{seed:07d}.jpg"), qt=spec.quality)
