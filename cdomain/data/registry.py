"""The one dataset registry: a dataset name or folder in, its splits and training targets out.

Every command and the training driver resolve ``--data`` here:

- embedded classification sets (``textures``, ``textures-tiny``): generated on first use;
- embedded crowd sets (``crowd``, ``crowd-tiny``): generated on first use, with density-map
  targets built from their head points;
- embedded segmentation sets (``mosaic``, ``mosaic-tiny``): texture mosaics generated on first
  use, with per-pixel label-map targets;
- a folder with ``train/`` and ``val/`` ImageFolder trees (``<split>/<class>/<image>.jpg``) and
  optionally ``test/``; ``val/`` and ``test/`` may also be flat with a label file (ImageNet's
  layout, :mod:`cdomain.data.layouts`);
- a MINC-2500 folder (``images/`` + ``labels/``), label split ``data_split`` (1..5);
- a plain ImageFolder tree (one split, ``"data"``), for commands that do not need two splits;
- either kind of folder holding learned-codec bitstream files (``.cdlb``, written by
  ``cdomain-prepare compress``) instead of JPEG files: a dataset of ``format`` ``"bitstream"``,
  read by the latent input straight from the bitstreams;
- for counting, a real crowd dataset folder (ShanghaiTech, UCF-QNRF, JHU-CROWD++ or the generic
  point layout; :mod:`cdomain.data.crowd_formats`), auto-detected or named by ``format``, with
  ``train``, ``val`` and ``test`` splits evaluated on whole images (``eval_whole``);
- embedded moving-texture clip sets (``clips``, ``clips-tiny``) for H.264 sweeps: frames rather
  than JPEG files, resolved by :func:`open_clips`.

:func:`open_dataset` returns a :class:`Dataset`: the sample list of every split, the class
names and, for counting, the target function of each split. ``label_map`` (a fine-to-coarse
label map file) relabels every split of a classification set with the coarse classes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from cdomain.data.folder import JPEG_SUFFIXES, SampleList, image_folder
from cdomain.errors import DataError

#: Tasks a dataset can serve.
TASKS = ("classification", "counting", "segmentation")
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
    from cdomain.data.mosaic import MOSAIC

    if task == "counting":
        return tuple(CROWD)
    if task == "segmentation":
        return tuple(MOSAIC)
    return tuple(EMBEDDED) + tuple(CROWD) + tuple(MOSAIC)


def open_dataset(data: str, task: str = "classification", *, require_splits: bool = True,
                 log: Callable[[str], Any] | None = None, format: str | None = None,
                 crowd: Any = None, label_map: str | None = None, data_split: int | None = None) -> Dataset:
    """Resolve ``data`` (embedded name or folder) for ``task``; DataError says what is wrong.

    ``require_splits=False`` also accepts a plain ImageFolder tree, as the single split ``"data"``.
    ``log`` is told when an embedded dataset is generated (first use). ``format`` names a crowd
    dataset layout (default: detected); ``crowd`` is a
    :class:`~cdomain.data.crowd_formats.CrowdOptions` (validation fraction, density recipe).
    ``label_map`` names a fine-to-coarse label map file; ``data_split`` picks MINC-2500's
    numbered split (default 1).
    """
    dataset = _open(data, task, require_splits=require_splits, log=log, data_split=data_split, format=format,
                    crowd=crowd)
    if label_map is None:
        return dataset
    from cdomain.data.layouts import apply_label_map, load_label_map

    if task != "classification":
        raise DataError(f"{label_map}: a label map relabels classification data, not {task}")
    mapping = load_label_map(label_map)
    splits = {name: apply_label_map(samples, mapping, label_map) for name, samples in dataset.splits.items()}
    return replace(dataset, splits=splits)


def _open(data: str, task: str, *, require_splits: bool, log: Callable[[str], Any] | None,
          data_split: int | None, format: str | None, crowd: Any) -> Dataset:
    from cdomain.data.crowd import CROWD, crowd_root
    from cdomain.data.embedded import EMBEDDED, embedded_dataset, embedded_root

    if task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    path = Path(data)
    from cdomain.data.clips import CLIPS

    if data in CLIPS and not path.exists():
        raise DataError(f"{data}: an embedded video clip set; it is read by H.264 sweeps (cdomain-eval --codec h264)")
    segmentation = _segmentation(data, task, path, log)
    if segmentation is not None:
        return segmentation
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
            raise DataError(f"{data}: an embedded classification dataset; {task} reads "
                            f"{', '.join(embedded_names(task))}")
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
    if task == "segmentation":
        raise DataError(f"{data}: segmentation reads an embedded mosaic dataset ({', '.join(embedded_names(task))})")
    if not path.is_dir():
        known = ", ".join(embedded_names())
        raise DataError(f"{data}: neither an embedded dataset ({known}) nor a folder")
    from cdomain.data.layouts import is_minc, minc_splits

    if is_minc(path):
        return Dataset(data, task, minc_splits(path, 1 if data_split is None else data_split), embedded=False)
    if data_split is not None:
        raise DataError(f"{data}: only MINC-2500-style data (images/ and labels/) has numbered splits "
                        f"(data split {data_split})")
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
    from cdomain.data.layouts import flat_split

    splits = {"train": image_folder(root / "train", _SUFFIXES[kind])}
    for split in ("val", "test"):
        if split == "test" and not (root / split).is_dir():
            continue
        flat = flat_split(root, split, splits["train"].classes) if not embedded and kind == "jpeg" else None
        splits[split] = flat if flat is not None else image_folder(root / split, _SUFFIXES[kind])
        if splits[split].classes != splits["train"].classes:
            raise DataError(f"{name}: train/ and {split}/ have different class folders")
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


def _segmentation(data: str, task: str, path: Path, log: Callable[[str], Any] | None) -> Dataset | None:
    """The mosaic dataset ``data`` for segmentation (None: ``data`` is not a mosaic name)."""
    from cdomain.data.mosaic import MOSAIC, SegmentationTarget, mosaic_root, mosaic_split
    from cdomain.data.textures import CLASSES

    if data not in MOSAIC or path.exists():
        return None
    if task != "segmentation":
        raise DataError(f"{data}: an embedded segmentation dataset; use it with --task segmentation")
    if log is not None and not mosaic_root(data).is_dir():
        log(f"generating the embedded mosaic dataset {data!r} into {mosaic_root(data)} (once)")
    splits, targets = {}, {}
    for split in ("train", "val"):
        paths, labels = mosaic_split(data, split, progress=sys.stderr.isatty())
        splits[split] = SampleList(tuple(paths), (-1,) * len(paths), tuple(CLASSES))
        targets[split] = SegmentationTarget(labels)
    return Dataset(data, "segmentation", splits, embedded=True, targets=targets)


def open_clips(data: str):
    """The embedded moving-texture clip set ``data`` (for H.264 sweeps); DataError if unknown."""
    from cdomain.data.clips import CLIPS, load_clips

    if data not in CLIPS:
        raise DataError(f"{data}: not an embedded clip set; H.264 sweeps read {', '.join(CLIPS)}")
    return load_clips(data)


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
        flags = given[0] if len(given) == 1 else f"{', '.join(given[:-1])} and {given[-1]}"
        verb = "applies" if len(given) == 1 else "apply"
        raise DataError(f"{name}: {flags} {verb} to crowd dataset folders, not embedded datasets")
