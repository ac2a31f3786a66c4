"""The one dataset registry: a dataset name or folder in, its splits and training targets out.

Every command and the training driver resolve ``--data`` here:

- embedded classification sets (``textures``, ``textures-tiny``): generated on first use;
- embedded crowd sets (``crowd``, ``crowd-tiny``): generated on first use, with density-map
  targets built from their head points;
- a folder with ``train/`` and ``val/`` ImageFolder trees (``<split>/<class>/<image>.jpg``);
- a plain ImageFolder tree (one split, ``"data"``), for commands that do not need two splits;
- either kind of folder holding learned-codec bitstream files (``.cdlb``, written by
  ``cdomain-prepare compress``) instead of JPEG files: a dataset of ``format`` ``"bitstream"``,
  read by the latent input straight from the bitstreams.

:func:`open_dataset` returns a :class:`Dataset`: the sample list of every split, the class
names and, for counting, the target function of each split.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cdomain.data.folder import JPEG_SUFFIXES, SampleList, image_folder
from cdomain.errors import DataError

#: Tasks a dataset can serve.
TASKS = ("classification", "counting")
#: File names each dataset format lists.
_SUFFIXES = {"jpeg": JPEG_SUFFIXES, "bitstream": (".cdlb",)}


@dataclass(frozen=True)
class Dataset:
    """A resolved dataset: samples per split, class names, and per-split targets (counting)."""

    name: str
    task: str
    splits: dict[str, SampleList]
    embedded: bool
    targets: dict[str, Callable] = field(default_factory=dict)
    format: str = "jpeg"  # "jpeg" files, or "bitstream" files of a learned codec (.cdlb)

    @property
    def classes(self) -> tuple[str, ...]:
        return next(iter(self.splits.values())).classes

    def split(self, name: str) -> SampleList:
        if name not in self.splits:
            raise DataError(f"{self.name}: has no {name!r} split (it has {', '.join(self.splits)})")
        return self.splits[name]

    def target(self, name: str) -> Callable | None:
        """The target function of split ``name`` (None: the class label)."""
        return self.targets.get(name)


def embedded_names(task: str | None = None) -> tuple[str, ...]:
    """Names of the embedded datasets (for ``task``, or all)."""
    from cdomain.data.crowd import CROWD
    from cdomain.data.embedded import EMBEDDED

    if task == "classification":
        return tuple(EMBEDDED)
    if task == "counting":
        return tuple(CROWD)
    return tuple(EMBEDDED) + tuple(CROWD)


def open_dataset(data: str, task: str = "classification", *, require_splits: bool = True,
                 log: Callable[[str], Any] | None = None) -> Dataset:
    """Resolve ``data`` (embedded name or folder) for ``task``; DataError says what is wrong.

    ``require_splits=False`` also accepts a plain ImageFolder tree, as the single split ``"data"``.
    ``log`` is told when an embedded dataset is generated (first use).
    """
    from cdomain.data.crowd import CROWD, crowd_root
    from cdomain.data.embedded import EMBEDDED, embedded_dataset, embedded_root

    if task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    path = Path(data)
    if data in CROWD and not path.exists():
        if task != "counting":
            raise DataError(f"{data}: an embedded crowd-counting dataset; use it with --task counting")
        if log is not None and not crowd_root(data).is_dir():
            log(f"generating the embedded crowd dataset {data!r} into {crowd_root(data)} (once)")
        return _crowd(data)
    if data in EMBEDDED and not path.exists():
        if task != "classification":
            raise DataError(f"{data}: an embedded classification dataset; counting reads {', '.join(CROWD)}")
        if log is not None and not embedded_root(data).is_dir():
            log(f"generating the embedded dataset {data!r} into {embedded_root(data)} (once)")
        root = embedded_dataset(data, progress=sys.stderr.isatty())
        return _folders(data, root, task, embedded=True)
    if task == "counting":
        raise DataError(f"{data}: counting reads an embedded crowd dataset ({', '.join(CROWD)})")
    if not path.is_dir():
        known = ", ".join(embedded_names())
        raise DataError(f"{data}: neither an embedded dataset ({known}) nor a folder")
    split_folders = (path / "train").is_dir() or (path / "val").is_dir()
    kind = _folder_format(path / "train" if (path / "train").is_dir() else path)
    if split_folders or require_splits:
        return _folders(data, path, task, embedded=False, kind=kind)
    return Dataset(data, task, {"data": image_folder(path, _SUFFIXES[kind])}, embedded=False, format=kind)


def _folder_format(root: Path) -> str:
    """``"bitstream"`` when the first class folder of ``root`` holds ``.cdlb`` files, else ``"jpeg"``."""
    try:
        classes = sorted(entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
        if classes:
            return "bitstream" if any(entry.suffix.lower() in _SUFFIXES["bitstream"]
                                      for entry in classes[0].iterdir()) else "jpeg"
    except OSError:
        pass  # image_folder reports an unreadable folder
    return "jpeg"


def _folders(name: str, root: Path, task: str, *, embedded: bool, kind: str = "jpeg") -> Dataset:
    missing = [split for split in ("train", "val") if not (root / split).is_dir()]
    if missing:
        raise DataError(f"{name}: expected an embedded dataset name or a folder with train/ and val/ "
                        f"sub-folders (missing {', '.join(missing)}/)")
    splits = {split: image_folder(root / split, _SUFFIXES[kind]) for split in ("train", "val")}
    if splits["train"].classes != splits["val"].classes:
        raise DataError(f"{name}: train/ and val/ have different class folders")
    return Dataset(name, task, splits, embedded=embedded, format=kind)


def _crowd(name: str) -> Dataset:
    from cdomain.data.crowd import crowd_split
    from cdomain.data.density import density_target

    splits, targets = {}, {}
    for split in ("train", "val"):
        paths, points = crowd_split(name, split, progress=sys.stderr.isatty())
        splits[split] = SampleList(tuple(paths), (-1,) * len(paths), ())
        targets[split] = density_target(points)
    return Dataset(name, "counting", splits, embedded=True, targets=targets)
