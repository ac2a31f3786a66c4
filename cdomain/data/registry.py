"""The one dataset registry: a dataset name or folder in, its splits and training targets out.

Every command and the training driver resolve ``--data`` here:

- embedded classification sets (``textures``, ``textures-tiny``): generated on first use;
- embedded crowd sets (``crowd``, ``crowd-tiny``): generated on first use, with density-map
  targets built from their head points;
- a folder with ``train/`` and ``val/`` ImageFolder trees (``<split>/<class>/<image>.jpg``);
- for counting, a real crowd dataset folder (ShanghaiTech, UCF-QNRF, JHU-CROWD++ or the generic
  point layout; :mod:`cdomain.data.crowd_formats`), auto-detected or named by ``format``, with
  ``train``, ``val`` and ``test`` splits evaluated on whole images (``eval_whole``);
- a plain ImageFolder tree (one split, ``"data"``), for commands that do not need two splits.

:func:`open_dataset` returns a :class:`Dataset`: the sample list of every split, the class
names and, for counting, the target function of each split.
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
    eval_whole: bool = False  # evaluate on whole images of varied size (real crowd datasets)

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
                 log: Callable[[str], Any] | None = None, format: str | None = None,
                 crowd: Any = None) -> Dataset:
    """Resolve ``data`` (embedded name or folder) for ``task``; DataError says what is wrong.

    ``require_splits=False`` also accepts a plain ImageFolder tree, as the single split ``"data"``.
    ``log`` is told when an embedded dataset is generated (first use). ``format`` names a crowd
    dataset layout (default: detected); ``crowd`` is a
    :class:`~cdomain.data.crowd_formats.CrowdOptions` (validation fraction, density recipe).
    """
    from cdomain.data.crowd import CROWD, crowd_root
    from cdomain.data.embedded import EMBEDDED, embedded_dataset, embedded_root

    if task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    path = Path(data)
    if (data in CROWD or data in EMBEDDED) and not path.exists():
        _no_folder_options(data, format, crowd)
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
    if format is not None and task != "counting":
        raise DataError(f"--format {format}: crowd dataset layouts are for --task counting")
    if task == "counting":
        if not path.is_dir():
            raise DataError(f"{data}: neither an embedded crowd dataset ({', '.join(CROWD)}) nor a folder")
        return _real_crowd(data, format, crowd, log)
    if not path.is_dir():
        known = ", ".join(embedded_names())
        raise DataError(f"{data}: neither an embedded dataset ({known}) nor a folder")
    if (path / "train").is_dir() or (path / "val").is_dir() or require_splits:
        return _folders(data, path, task, embedded=False)
    return Dataset(data, task, {"data": image_folder(path)}, embedded=False)


def _folders(name: str, root: Path, task: str, *, embedded: bool) -> Dataset:
    missing = [split for split in ("train", "val") if not (root / split).is_dir()]
    if missing:
        raise DataError(f"{name}: expected an embedded dataset name or a folder with train/ and val/ "
                        f"sub-folders (missing {', '.join(missing)}/)")
    splits = {split: image_folder(root / split) for split in ("train", "val")}
    if splits["train"].classes != splits["val"].classes:
        raise DataError(f"{name}: train/ and val/ have different class folders")
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


def _real_crowd(name: str, format: str | None, options: Any, log: Callable[[str], Any] | None) -> Dataset:
    from cdomain.data.crowd_formats import open_crowd

    folder, splits, targets = open_crowd(name, format, options)
    if log is not None:
        log(f"{name}: {folder.format} layout, {' / '.join(f'{len(s)} {k}' for k, s in splits.items())} images "
            f"(validation: {folder.val_source})")
    return Dataset(name, "counting", splits, embedded=False, targets=targets, eval_whole=True)


def _no_folder_options(name: str, format: str | None, crowd: Any) -> None:
    """Crowd-folder options given for an embedded dataset are refused by flag, not ignored."""
    given = ["--format"] if format is not None else []
    given += [flag for field_name, flag in (("val_fraction", "--val-fraction"), ("density", "--density"),
                                           ("sigma", "--sigma"), ("max_side", "--max-side"))
             if crowd is not None and getattr(crowd, field_name, None) is not None]
    if given:
        raise DataError(f"{name}: {', '.join(given)} apply to crowd dataset folders, not embedded datasets")
