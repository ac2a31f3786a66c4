"""Sample lists: ImageFolder directories, explicit file lists and embedded dataset names."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

from cdomain.data.embedded import EMBEDDED, embedded_dataset

JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")

#: A dataset source: a folder, an embedded dataset name, or files (optionally with labels).
DataSource = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]", tuple]], "SampleList"]


@dataclass(frozen=True)
class SampleList:
    """Image paths with integer labels and the class names the labels index."""

    paths: tuple[str, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)


def image_folder(root: str | os.PathLike[str]) -> SampleList:
    """List an ImageFolder tree: one sub-folder of JPEG files per class, classes sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder does not exist")
    classes = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise ValueError(f"{root}: no class sub-folders (expected ImageFolder layout: ROOT/<class>/<image>.jpg)")
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(
            entry for entry in (root / name).iterdir() if entry.is_file() and entry.suffix.lower() in JPEG_SUFFIXES
        )
        paths.extend(str(path) for path in files)
        labels.extend([label] * len(files))
    if not paths:
        raise ValueError(f"{root}: no JPEG files ({', '.join(JPEG_SUFFIXES)}) in its class folders")
    return SampleList(tuple(paths), tuple(labels), tuple(classes))


def resolve_source(source: DataSource, split: str | None = None) -> SampleList:
    """Turn a dataset source into a :class:`SampleList`.

    - an embedded dataset name (e.g. ``"textures"``): generated if needed; ``split`` picks
      ``"train"`` (default) or ``"val"``;
    - a folder: if it has a ``split`` sub-folder that is used, otherwise the folder itself is the
      ImageFolder root;
    - a sequence of paths (label -1, no classes) or of ``(path, label)`` pairs;
    - a :class:`SampleList`, returned as it is.
    """
    if isinstance(source, SampleList):
        return source
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if name in EMBEDDED and not Path(name).exists():
            return image_folder(embedded_dataset(name) / (split or "train"))
        root = Path(name)
        if split is not None and (root / split).is_dir():
            root = root / split
        return image_folder(root)
    items = list(source)
    if not items:
        raise ValueError("empty file list")
    if all(isinstance(item, tuple) and len(item) == 2 for item in items):
        paths = tuple(os.fspath(path) for path, _ in items)
        labels = tuple(int(label) for _, label in items)
        classes = tuple(str(i) for i in range(max(labels) + 1)) if max(labels) >= 0 else ()
        return SampleList(paths, labels, classes)
    paths = tuple(os.fspath(path) for path in items)
    return SampleList(paths, tuple([-1] * len(paths)), ())
