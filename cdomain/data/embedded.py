"""Embedded datasets: generated on first use as real JPEG files, cached, written atomically.

The default dataset, ``"textures"``, is written in ImageFolder layout::

    $CDOMAIN_DATA/textures-v1/{train,val}/<class name>/<index>.jpg

with IJG quality 90 and 4:2:0 chroma subsampling (libjpeg's defaults). The whole tree is built in
a temporary sibling directory and renamed into place in one step, so an interrupted generation
never leaves a dataset that looks complete.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm import tqdm

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
    """
    if root.is_dir():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        write(staging)
        try:
            staging.rename(root)
        except OSError:
            if not root.is_dir():  # not a concurrent generator finishing first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


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
