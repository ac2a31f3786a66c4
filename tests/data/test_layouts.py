"""Real dataset layouts as fixtures: ImageNet (foldered and flat val), MINC-2500, label maps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from cdomain.data.registry import open_dataset
from cdomain.errors import DataError
from tests.helpers import photo_like

WNIDS = ("n01440764", "n01443537", "n01484850")


def jpeg(path: Path, seed: int = 0, size: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo_like(size, size, seed)).save(path, quality=85)


def imagenet(root: Path, val: str = "folders", test: bool = False) -> dict[str, str]:
    """ILSVRC-2012 layout: train/<wnid>/<wnid>_<n>.JPEG; val foldered, or flat with a label file."""
    truth = {}
    for label, wnid in enumerate(WNIDS):
        for n in range(2):
            jpeg(root / "train" / wnid / f"{wnid}_{n}.JPEG", seed=label * 10 + n)
    for i in range(6):
        wnid = WNIDS[(i * 2) % 3]
        name = f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        truth[name] = wnid
        jpeg(root / "val" / (f"{wnid}/{name}" if val == "folders" else name), seed=100 + i)
        if test:
            jpeg(root / "test" / wnid / name.replace("val", "test"), seed=200 + i)
    if val == "csv":
        rows = ["ImageId,PredictionString"] + [
            f"{Path(name).stem},{wnid} 10 20 30 40 {WNIDS[0]} 1 2 3 4" for name, wnid in reversed(truth.items())]
        (root / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    elif val == "txt-index":
        (root / "val").joinpath("val.txt").write_text(
            "".join(f"{name} {WNIDS.index(wnid)}\n" for name, wnid in truth.items()))
    elif val == "txt-name":
        (root / "val.txt").write_text("".join(f"{name} {wnid}\n" for name, wnid in truth.items()))
    return truth


@pytest.mark.parametrize("val", ["folders", "csv", "txt-index", "txt-name"])
def test_imagenet_layouts(tmp_path, val):
    truth = imagenet(tmp_path, val)
    dataset = open_dataset(str(tmp_path))
    assert dataset.classes == WNIDS
    assert len(dataset.split("train")) == 6 and set(dataset.split("train").labels) == {0, 1, 2}
    samples = dataset.split("val")
    found = {Path(path).name: samples.classes[label] for path, label in zip(samples.paths, samples.labels)}
    assert found == truth


def test_imagenet_test_split_and_errors(tmp_path):
    imagenet(tmp_path, test=True)
    assert len(open_dataset(str(tmp_path)).split("test")) == 6
    flat = tmp_path / "flat"
    imagenet(flat, "none")
    with pytest.raises(DataError, match="needs a label file: LOC_val_solution.csv or val.txt"):
        open_dataset(str(flat))
    (flat / "val.txt").write_text("ILSVRC2012_val_00000001.JPEG n99999999\n")
    with pytest.raises(DataError, match=r"val.txt:1: label 'n99999999' is not a class"):
        open_dataset(str(flat))
    (flat / "val.txt").write_text("ILSVRC2012_val_00000001.JPEG 0\n")
    with pytest.raises(DataError, match="5 JPEG files have no label"):
        open_dataset(str(flat))


def minc(root: Path) -> None:
    """MINC-2500: images/<class>/<class>_NNNNNN.jpg and labels/{train,validate,test}{1..5}.txt."""
    classes = ("brick", "carpet", "wood")
    files = {name: [f"images/{name}/{name}_{n:06d}.jpg" for n in range(5)] for name in classes}
    for name, paths in files.items():
        for n, path in enumerate(paths):
            jpeg(root / path, seed=n)
    (root / "labels").mkdir()
    for split in range(1, 6):
        # split k: image (k-1) of each class tests, image k % 5 validates, the rest train
        test = [paths[split - 1] for paths in files.values()]
        validate = [paths[split % 5] for paths in files.values()]
        train = [p for paths in files.values() for p in paths if p not in test and p not in validate]
        for stem, listed in (("train", train), ("validate", validate), ("test", test)):
            (root / "labels" / f"{stem}{split}.txt").write_text("\n".join(listed) + "\n")


@pytest.mark.parametrize("split", [1, 4])
def test_minc_splits(tmp_path, split):
    minc(tmp_path)
    dataset = open_dataset(str(tmp_path), data_split=split)
    assert dataset.classes == ("brick", "carpet", "wood")
    assert [len(dataset.split(name)) for name in ("train", "val", "test")] == [9, 3, 3]
    test = dataset.split("test")
    assert sorted(Path(p).name for p in test.paths) == [f"{c}_{split - 1:06d}.jpg" for c in dataset.classes]
    assert [test.classes[label] for label in test.labels] == [Path(p).parent.name for p in test.paths]


def test_minc_refuses_paths_outside_and_bad_split_numbers(tmp_path):
    minc(tmp_path)
    with pytest.raises(DataError, match="splits 1..5"):
        open_dataset(str(tmp_path), data_split=6)
    (tmp_path / "labels" / "train1.txt").write_text("images/../../etc/passwd\n")
    with pytest.raises(DataError, match="not a path inside"):
        open_dataset(str(tmp_path))
    imagenet(tmp_path / "in")
    with pytest.raises(DataError, match="only MINC-2500-style data"):
        open_dataset(str(tmp_path / "in"), data_split=2)


@pytest.mark.parametrize("form", ["json", "csv", "yaml"])
def test_label_map_relabels_every_split(tmp_path, form):
    imagenet(tmp_path / "data", test=True)
    mapping = {WNIDS[0]: "fish", WNIDS[1]: "fish", WNIDS[2]: "bird"}
    path = tmp_path / f"map.{form}"
    if form == "json":
        path.write_text(json.dumps(mapping))
    elif form == "csv":
        path.write_text("fine,coarse\n" + "".join(f"{k},{v}\n" for k, v in mapping.items()))
    else:
        path.write_text("".join(f"{k}: {v}\n" for k, v in mapping.items()))
    fine = open_dataset(str(tmp_path / "data"))
    coarse = open_dataset(str(tmp_path / "data"), label_map=str(path))
    assert coarse.classes == ("bird", "fish")
    for split in ("train", "val", "test"):
        expected = [mapping[fine.classes[label]] for label in fine.split(split).labels]
        assert [coarse.classes[label] for label in coarse.split(split).labels] == expected


def test_label_map_errors(tmp_path):
    imagenet(tmp_path / "data")
    path = tmp_path / "map.json"
    path.write_text(json.dumps({WNIDS[0]: "fish"}))
    with pytest.raises(DataError, match="map.json: maps no coarse class for 2 class"):
        open_dataset(str(tmp_path / "data"), label_map=str(path))
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="expected a mapping"):
        open_dataset(str(tmp_path / "data"), label_map=str(path))
    (tmp_path / "map.csv").write_text("a,b,c\n")
    with pytest.raises(DataError, match="row 1: expected two columns"):
        open_dataset(str(tmp_path / "data"), label_map=str(tmp_path / "map.csv"))
    with pytest.raises(DataError, match="cannot read the label file"):
        open_dataset(str(tmp_path / "data"), label_map=str(tmp_path / "missing.json"))
