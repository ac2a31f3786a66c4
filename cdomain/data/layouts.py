"""Real dataset layouts beside ImageFolder: ImageNet's flat validation folder, MINC-2500, label maps.

The dataset registry (:func:`cdomain.data.registry.open_dataset`) calls these; each returns
:class:`~cdomain.data.folder.SampleList` objects whose class names are the training classes.

- **ImageNet** (ILSVRC-2012 as distributed): ``train/<wnid>/*.JPEG``; ``val/`` either foldered
  the same way or flat (``val/ILSVRC2012_val_00000001.JPEG`` ...) with one label file, found in
  the dataset folder or in ``val/``:

  - ``LOC_val_solution.csv`` (the Kaggle/devkit localisation file): header
    ``ImageId,PredictionString``, the file stem and ``"<wnid> x1 y1 x2 y2 [<wnid> ...]"``; the
    first wnid is the label;
  - ``val.txt``: ``<file> <label>`` per line, the label a class folder name of ``train/`` or
    an integer index into the sorted class names (the Caffe ``val.txt``).

  A ``test/`` split is read the same way (``LOC_test_solution.csv`` or ``test.txt``).
- **MINC-2500**: ``images/<class>/<class>_NNNNNN.jpg`` with ``labels/{train,validate,test}{1..5}.txt``
  listing ``images/<class>/<file>.jpg`` per line; ``split_number`` picks the numbered split,
  ``validate`` becomes ``val``.
- **Label maps** (fine to coarse, e.g. dos Santos et al.'s 211 -> 12 grouping): a JSON object
  or YAML mapping ``{fine: coarse}``, or a CSV of ``fine,coarse`` rows (an optional header row
  ``fine,coarse``). Every class of the data must be mapped; coarse classes are sorted by name.

Paths read from label files stay inside their folder (no absolute paths, no ``..``).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path, PurePosixPath

from cdomain.data.folder import JPEG_SUFFIXES, SampleList
from cdomain.errors import DataError

#: MINC-2500's split files and the cdomain split each becomes.
MINC_SPLITS = {"train": "train", "validate": "val", "test": "test"}
MINC_SPLIT_NUMBERS = range(1, 6)


def is_minc(root: Path) -> bool:
    """Whether ``root`` looks like MINC-2500 (``images/`` and ``labels/``)."""
    return (root / "images").is_dir() and (root / "labels").is_dir()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the label file ({getattr(error, 'strerror', None) or error})") from None


def _confined(name: str, source: Path, line: int) -> PurePosixPath:
    relative = PurePosixPath(name.replace("\\", "/"))
    if not name or relative.is_absolute() or ".." in relative.parts:
        raise DataError(f"{source}:{line}: {name!r} is not a path inside the dataset folder")
    return relative


def minc_splits(root: Path, split_number: int = 1) -> dict[str, SampleList]:
    """The train/val/test sample lists of MINC-2500 split ``split_number`` (1..5)."""
    if split_number not in MINC_SPLIT_NUMBERS:
        raise DataError(f"{root}: MINC-2500 has label splits 1..5, got {split_number}")
    images = root / "images"
    classes = sorted(entry.name for entry in images.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise DataError(f"{images}: no class sub-folders (expected images/<class>/<file>.jpg)")
    index = {name: label for label, name in enumerate(classes)}
    splits = {}
    for stem, split in MINC_SPLITS.items():
        path = root / "labels" / f"{stem}{split_number}.txt"
        if not path.is_file():
            if split == "test":
                continue
            raise DataError(f"{path}: missing (MINC-2500 layout: labels/{{train,validate,test}}{{1..5}}.txt)")
        paths, labels = [], []
        for number, line in enumerate(_read_text(path).splitlines(), 1):
            name = line.strip()
            if not name:
                continue
            relative = _confined(name, path, number)
            if len(relative.parts) != 3 or relative.parts[0] != "images" or relative.parts[1] not in index:
                raise DataError(f"{path}:{number}: expected images/<class>/<file> with a class folder of "
                                f"{images}, got {name!r}")
            paths.append(str(root / relative))
            labels.append(index[relative.parts[1]])
        if not paths:
            raise DataError(f"{path}: lists no images")
        splits[split] = SampleList(tuple(paths), tuple(labels), tuple(classes))
    return splits


def flat_split(root: Path, split: str, classes: tuple[str, ...]) -> SampleList | None:
    """A flat ``root/split`` folder of JPEG files labelled by a label file; None if it has class folders."""
    folder = root / split
    entries = list(folder.iterdir())
    if any(entry.is_dir() and not entry.name.startswith(".") for entry in entries):
        return None
    files = sorted(entry.name for entry in entries if entry.is_file() and entry.suffix.lower() in JPEG_SUFFIXES)
    if not files:
        return None
    labels = _label_file(root, split, classes)
    missing = [name for name in files if name not in labels and Path(name).stem not in labels]
    if missing:
        raise DataError(f"{folder}: {len(missing)} JPEG files have no label in the label file "
                        f"(first: {missing[0]})")
    values = [labels.get(name, labels.get(Path(name).stem)) for name in files]
    return SampleList(tuple(str(folder / name) for name in files), tuple(values), classes)


def _label_file(root: Path, split: str, classes: tuple[str, ...]) -> dict[str, int]:
    """File name (or stem) -> label, from ``LOC_<split>_solution.csv`` or ``<split>.txt``."""
    index = {name: label for label, name in enumerate(classes)}
    names = (f"LOC_{split}_solution.csv", f"{split}.txt")
    candidates = [folder / name for name in names for folder in (root, root / split)]
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        raise DataError(f"{root / split}: a flat folder of images needs a label file: LOC_{split}_solution.csv "
                        f"or {split}.txt in {root} or {root / split}")
    labels: dict[str, int] = {}
    text = _read_text(path)

    def label_of(value: str, number: int) -> int:
        if value in index:
            return index[value]
        if value.isdigit() and int(value) < len(classes):
            return int(value)
        raise DataError(f"{path}:{number}: label {value!r} is not a class of train/ (nor an index below "
                        f"{len(classes)})")

    if path.suffix == ".csv":
        rows = csv.reader(io.StringIO(text))
        header = next(rows, None)
        if header is None or [cell.strip() for cell in header[:2]] != ["ImageId", "PredictionString"]:
            raise DataError(f"{path}: expected the header ImageId,PredictionString")
        for number, row in enumerate(rows, 2):
            if not row:
                continue
            if len(row) < 2 or not row[1].split():
                raise DataError(f"{path}:{number}: expected ImageId,PredictionString")
            labels[_confined(row[0].strip(), path, number).name] = label_of(row[1].split()[0], number)
    else:
        for number, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise DataError(f"{path}:{number}: expected '<file> <label>', got {line.strip()!r}")
            labels[_confined(parts[0], path, number).name] = label_of(parts[1], number)
    return labels


# ------------------------------------------------------------------------------------ label maps


def load_label_map(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a fine-to-coarse label map (JSON, YAML or CSV; see the module docstring)."""
    path = Path(path)
    text = _read_text(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        rows = [row for row in csv.reader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",") if row]
        if rows and [cell.strip().lower() for cell in rows[0]] == ["fine", "coarse"]:
            rows = rows[1:]
        bad = next((number for number, row in enumerate(rows, 1) if len(row) != 2), None)
        if bad is not None:
            raise DataError(f"{path}: row {bad}: expected two columns, fine,coarse")
        pairs = [(row[0].strip(), row[1].strip()) for row in rows]
    elif suffix in (".json", ".yaml", ".yml"):
        try:
            if suffix == ".json":
                loaded = json.loads(text)
            else:
                import yaml

                loaded = yaml.safe_load(text)
        except ValueError as error:
            raise DataError(f"{path}: not valid {suffix[1:].upper()} ({str(error).splitlines()[0]})") from None
        except Exception as error:  # yaml.YAMLError
            raise DataError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise DataError(f"{path}: expected a mapping of fine class names to coarse class names")
        pairs = []
        for key, value in loaded.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool) or not isinstance(value, (str, int)) \
                    or isinstance(value, bool):
                raise DataError(f"{path}: {key!r}: class names must be strings, got {value!r}")
            pairs.append((str(key), str(value)))
    else:
        raise DataError(f"{path}: a label map is a .json, .yaml/.yml or .csv file")
    mapping: dict[str, str] = {}
    for fine, coarse in pairs:
        if not fine or not coarse:
            raise DataError(f"{path}: empty class name in {fine!r} -> {coarse!r}")
        if mapping.get(fine, coarse) != coarse:
            raise DataError(f"{path}: {fine!r} is mapped twice ({mapping[fine]!r} and {coarse!r})")
        mapping[fine] = coarse
    if not mapping:
        raise DataError(f"{path}: maps no classes")
    return mapping


def coarse_table(classes: tuple[str, ...], mapping: dict[str, str], source: str) -> tuple[tuple[str, ...], list[int]]:
    """The coarse classes of ``mapping`` (sorted by name) and the coarse label of each of ``classes``."""
    missing = [name for name in classes if name not in mapping]
    if missing:
        raise DataError(f"{source}: maps no coarse class for {len(missing)} class(es) of the data "
                        f"(first: {', '.join(missing[:3])})")
    coarse = tuple(sorted({mapping[name] for name in classes}))
    index = {name: label for label, name in enumerate(coarse)}
    return coarse, [index[mapping[name]] for name in classes]


def apply_label_map(samples: SampleList, mapping: dict[str, str], source: str) -> SampleList:
    """``samples`` relabelled with the coarse classes of ``mapping`` (sorted by name)."""
    coarse, table = coarse_table(samples.classes, mapping, source)
    return SampleList(samples.paths, tuple(table[label] if label >= 0 else label for label in samples.labels), coarse)
