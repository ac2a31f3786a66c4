"""Sample lists: ImageFolder directories, explicit file lists and embedded dataset names.

A folder that cannot be used as a data set raises :class:`cdomain.errors.DataError` naming the
folder and the cause; a missing folder raises :class:`MissingDataError`, which is also a
``FileNotFoundError``. A class sub-folder without JPEG files is an error rather than a class
that silently has no samples (and would shift every later label's meaning for a model).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

from cdomain.data.embedded import EMBEDDED
from cdomain.errors import DataError

JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")

#: A dataset source: a folder, an embedded dataset name, or files (optionally with labels).
DataSource = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]", tuple]], "SampleList"]


class MissingDataError(DataError, FileNotFoundError):
    """A dataset folder that does not exist (caught by ``except FileNotFoundError`` too)."""


@dataclass(frozen=True)
class SampleList:
    """Image paths with integer labels and the class names the labels index."""

    paths: tuple[str, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)


def image_folder(root: str | os.PathLike[str], suffixes: tuple[str, ...] = JPEG_SUFFIXES) -> SampleList:
    """List an ImageFolder tree: one sub-folder of JPEG files per class, classes sorted by name.

    ``suffixes``: the file names that count (lower case); ``(".cdlb",)`` lists learned-codec
    bitstream files instead (:mod:`cdomain.latents.compress`).

    Raises :class:`MissingDataError` if ``root`` is not a folder, :class:`DataError` if it has no
    class sub-folders or a class sub-folder has no JPEG files.
    """
    kind = "JPEG" if suffixes == JPEG_SUFFIXES else "bitstream"
    root = Path(root)
    if not root.is_dir():
        raise MissingDataError(f"{root}: dataset folder does not exist")
    try:
        classes = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    except OSError as error:
        raise DataError(f"{root}: cannot list the dataset folder ({error.strerror or error})") from error
    if not classes:
        raise DataError(f"{root}: no class sub-folders (expected ImageFolder layout: ROOT/<class>/<image>.jpg)")
    paths, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        try:
            files = sorted(
                entry for entry in folder.iterdir() if entry.is_file() and entry.suffix.lower() in suffixes
            )
        except OSError as error:
            raise DataError(f"{folder}: cannot list the class folder ({error.strerror or error})") from error
        if not files:
            raise DataError(f"{folder}: class folder has no {kind} files ({', '.join(suffixes)})")
        paths.extend(str(path) for path in files)
        labels.extend([label] * len(files))
    return SampleList(tuple(paths), tuple(labels), tuple(classes))


def resolve_source(source: DataSource, split: str | None = None) -> SampleList:
    """Turn a dataset source into a :class:`SampleList`.

    - an embedded dataset name (e.g. ``"textures"``), through the dataset registry
      (:func:`cdomain.data.registry.open_dataset`); ``split`` picks ``"train"`` (default) or ``"val"``;
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
            from cdomain.data.registry import open_dataset

            return open_dataset(name, "classification").split(split or "train")
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
