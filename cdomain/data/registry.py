"""The one dataset registry: a dataset name or folder in, its splits and training targets out.

Every command and the training driver resolve ``--data`` here:

- embedded classification sets (``textures``, ``textures-tiny``): generated on first use;
- embedded crowd sets (``crowd``, ``crowd-tiny``): generated on first use, with density-map
  targets built from their head points;
- a folder with ``train/`` and ``val/`` ImageFolder trees (``<split>/<class>/<image>.jpg``) and
  optionally ``test/``; ``val/`` and ``test/`` may also be flat with a label file (ImageNet's
  layout, :mod:`cdomain.data.layouts`);
- a MINC-2500 folder (``images/`` + ``labels/``), label split ``data_split`` (1..5);
- a plain ImageFolder tree (one split, ``"data"``), for commands that do not need two splits.

:func:`open_dataset` returns a :class:`Dataset`: the sample list of every split, the class
names and, for counting, the target function of each split. ``label_map`` (a fine-to-coarse
label map file) relabels every split of a classification set with the coarse classes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cdomain.data.folder import SampleList, image_folder
from cdomain.errors import DataError

#: Tasks a dataset can serve.
TASKS = ("classification", "counting")


@dataclass(frozen=True)
class Dataset:
    """A resolved dataset: samples per split, class names, and per-split targets (counting)."""

    name: str
    task: str
    splits: dict[str, SampleList]
    embedded: bool
    targets: dict[str, Callable] = field(default_factory=dict)

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
                 log: Callable[[str], Any] | None = None, label_map: str | None = None,
                 data_split: int | None = None) -> Dataset:
    """Resolve ``data`` (embedded name or folder) for ``task``; DataError says what is wrong.

    ``require_splits=False`` also accepts a plain ImageFolder tree, as the single split ``"data"``.
    ``log`` is told when an embedded dataset is generated (first use). ``label_map`` names a
    fine-to-coarse label map file; ``data_split`` picks MINC-2500's numbered split (default 1).
    """
    dataset = _open(data, task, require_splits=require_splits, log=log, data_split=data_split)
    if label_map is None:
        return dataset
    from cdomain.data.layouts import apply_label_map, load_label_map

    if task != "classification":
        raise DataError(f"{label_map}: a label map relabels classification data, not {task}")
    mapping = load_label_map(label_map)
    splits = {name: apply_label_map(samples, mapping, label_map) for name, samples in dataset.splits.items()}
    return Dataset(dataset.name, task, splits, dataset.embedded, dataset.targets)


def _open(data: str, task: str, *, require_splits: bool, log: Callable[[str], Any] | None,
          data_split: int | None) -> Dataset:
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
    from cdomain.data.layouts import is_minc, minc_splits

    if is_minc(path):
        return Dataset(data, task, minc_splits(path, 1 if data_split is None else data_split), embedded=False)
    if data_split is not None:
        raise DataError(f"{data}: only MINC-2500-style data (images/ and labels/) has numbered splits "
                        f"(data split {data_split})")
    if (path / "train").is_dir() or (path / "val").is_dir() or require_splits:
        return _folders(data, path, task, embedded=False)
    return Dataset(data, task, {"data": image_folder(path)}, embedded=False)


def _folders(name: str, root: Path, task: str, *, embedded: bool) -> Dataset:
    missing = [split for split in ("train", "val") if not (root / split).is_dir()]
    if missing:
        raise DataError(f"{name}: expected an embedded dataset name or a folder with train/ and val/ "
                        f"sub-folders (missing {', '.join(missing)}/)")
    from cdomain.data.layouts import flat_split

    splits = {"train": image_folder(root / "train")}
    for split in ("val", "test"):
        if split == "test" and not (root / split).is_dir():
            continue
        flat = flat_split(root, split, splits["train"].classes) if not embedded else None
        splits[split] = flat if flat is not None else image_folder(root / split)
        if splits[split].classes != splits["train"].classes:
            raise DataError(f"{name}: train/ and {split}/ have different class folders")
    return Dataset(name, task, splits, embedded=embedded)


def _crowd(name: str) -> Dataset:
    from cdomain.data.crowd import crowd_split
    from cdomain.data.density import density_target

    splits, targets = {}, {}
    for split in ("train", "val"):
        paths, points = crowd_split(name, split, progress=sys.stderr.isatty())
        splits[split] = SampleList(tuple(paths), (-1,) * len(paths), ())
        targets[split] = density_target(points)
    return Dataset(name, "counting", splits, embedded=True, targets=targets)
