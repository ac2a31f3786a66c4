"""Real crowd dataset readers: fixtures in each published layout, every point read back exactly,
auto-detection, seeded validation splits and one-line errors for damaged annotations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from cdomain.data.crowd_formats import FORMATS, carve_validation, detect_format, read_crowd_folder
from cdomain.data.registry import open_dataset
from cdomain.errors import DataError

from .crowd_fixtures import WRITERS, write_jhu, write_points, write_qnrf, write_shanghaitech


def _by_name(paths, points) -> dict[str, np.ndarray]:
    return {Path(path).name: pts for path, pts in zip(paths, points)}


def _check_all_points(folder, written) -> None:
    """Every image of every written split is read, with exactly the points written."""
    read = {}
    for split, (paths, points) in folder.splits.items():
        assert len(paths) == len(points)
        for name, pts in _by_name(paths, points).items():
            assert name not in read.get(_official(split), {}), f"{name} in two splits"
            read.setdefault(_official(split), {})[name] = pts
    assert set(read) == set(written)
    for split, files in written.items():
        assert set(read[split]) == set(files), split
        for name, points in files.items():
            assert read[split][name].shape == (len(points), 2)
            assert np.array_equal(read[split][name], points), (split, name)


def _official(split: str) -> str:
    return "train" if split == "val" else split  # carved val images come from the official train split


@pytest.mark.parametrize("layout", ["cell", "struct", "mixed"])
def test_shanghaitech_points_in_both_matlab_layouts(tmp_path, layout):
    root = tmp_path / "part_A"
    written = write_shanghaitech(root, layout=layout)
    folder = read_crowd_folder(root)
    assert folder.format == "shanghaitech" and folder.density == "adaptive"
    _check_all_points(folder, written)


def test_qnrf_points(tmp_path):
    written = write_qnrf(tmp_path / "UCF-QNRF_ECCV18")
    folder = read_crowd_folder(tmp_path / "UCF-QNRF_ECCV18")
    assert folder.format == "qnrf"
    _check_all_points(folder, written)


def test_jhu_points_and_its_official_val_split(tmp_path):
    written = write_jhu(tmp_path / "jhu_crowd_v2.0")
    folder = read_crowd_folder(tmp_path / "jhu_crowd_v2.0")
    assert folder.format == "jhu" and folder.val_source == "official"
    for split in ("train", "val", "test"):
        paths, points = folder.splits[split]
        got = _by_name(paths, points)
        assert set(got) == set(written[split])
        assert all(np.array_equal(got[name], written[split][name]) for name in got)


def test_generic_points_json_and_csv(tmp_path):
    written = write_points(tmp_path / "disco")
    folder = read_crowd_folder(tmp_path / "disco")
    assert folder.format == "points"
    _check_all_points(folder, written)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_layout_is_detected_as_itself_only(tmp_path, name):
    WRITERS[name](tmp_path / name, (3, 2) if name != "jhu" else (3, 1, 2))
    assert detect_format(tmp_path / name) == name
    assert [other for other, module in FORMATS.items() if module.detect(tmp_path / name)] == [name]
    for other in FORMATS:
        if other != name:
            with pytest.raises(DataError, match=f"not in the {other} layout"):
                read_crowd_folder(tmp_path / name, other)


def test_validation_is_a_seeded_fraction_of_train(tmp_path):
    train, val = carve_validation(10, 0.2, seed=0)
    assert len(val) == 2 and len(train) == 8 and sorted(train + val) == list(range(10))
    assert carve_validation(10, 0.2, seed=0) == (train, val)
    assert carve_validation(10, 0.2, seed=1) != (train, val)
    # Part A carves 20% by default, Part B 10% (and uses fixed-sigma kernels)
    write_shanghaitech(tmp_path / "part_A", counts=(10, 1))
    write_shanghaitech(tmp_path / "part_B", counts=(10, 1))
    part_a, part_b = read_crowd_folder(tmp_path / "part_A"), read_crowd_folder(tmp_path / "part_B")
    assert [len(part_a.splits[s][0]) for s in ("train", "val")] == [8, 2]
    assert [len(part_b.splits[s][0]) for s in ("train", "val")] == [9, 1]
    assert part_b.density == "fixed" and part_b.sigma == 15.0
    again = read_crowd_folder(tmp_path / "part_A")  # the same split every time
    assert all(again.splits[s][0] == part_a.splits[s][0] for s in ("train", "val", "test"))
    custom = read_crowd_folder(tmp_path / "part_A", val_fraction=0.5)
    assert len(custom.splits["val"][0]) == 5 and custom.val_source.startswith("carved 0.5")
    with pytest.raises(DataError, match="fraction"):
        read_crowd_folder(tmp_path / "part_A", val_fraction=1.5)


def test_registry_opens_a_crowd_folder_with_three_splits(tmp_path):
    written = write_qnrf(tmp_path / "qnrf")
    logged = []
    dataset = open_dataset(str(tmp_path / "qnrf"), "counting", log=logged.append)
    assert set(dataset.splits) == {"train", "val", "test"} and dataset.eval_whole and not dataset.embedded
    assert len(dataset.split("test")) == len(written["test"])
    counts = [dataset.target("test").count(i) for i in range(len(dataset.split("test")))]
    assert counts == [len(written["test"][Path(p).name]) for p in dataset.split("test").paths]
    assert "qnrf layout" in logged[0]
    assert open_dataset(str(tmp_path / "qnrf"), "counting", format="qnrf").splits == dataset.splits  # SampleLists
    with pytest.raises(DataError, match="--task counting"):
        open_dataset(str(tmp_path / "qnrf"), "classification", format="qnrf")
    with pytest.raises(DataError, match="unknown"):
        open_dataset(str(tmp_path / "qnrf"), "counting", format="ucf")


def test_damaged_annotations_give_one_line_errors(tmp_path):
    root = tmp_path / "part_A"
    write_shanghaitech(root, counts=(3, 1))
    gt = root / "train_data" / "ground-truth" / "GT_IMG_2.mat"
    gt.write_bytes(b"MATLAB 5.0 MAT-file, garbage")
    with pytest.raises(DataError, match="GT_IMG_2.mat: not a readable MATLAB file"):
        read_crowd_folder(root)
    savemat(str(gt), {"something_else": np.zeros((2, 2))})
    with pytest.raises(DataError, match="GT_IMG_2.mat: no image_info"):
        read_crowd_folder(root)
    gt.unlink()
    with pytest.raises(DataError, match="IMG_2.jpg: no annotation file"):
        read_crowd_folder(root)

    jhu = tmp_path / "jhu"
    write_jhu(jhu, counts=(2, 1, 1))
    (jhu / "train" / "gt" / "0001.txt").write_text("10 20 5 5 1\n")
    with pytest.raises(DataError, match=r"0001.txt: line 1: expected 6 values"):
        read_crowd_folder(jhu)

    points = tmp_path / "points"
    write_points(points, counts=(2, 1))
    (points / "train" / "points" / "frame_001.json").write_text("[[1, 2], [3]]")
    with pytest.raises(DataError, match="frame_001.json: expected a list of"):
        read_crowd_folder(points)
    (points / "train" / "points" / "frame_001.json").write_text('[[1, "NaN"]]')
    with pytest.raises(DataError, match="frame_001.json"):
        read_crowd_folder(points)
    with pytest.raises(DataError, match="not a crowd dataset folder in a known layout"):
        read_crowd_folder(tmp_path / "part_A" / "train_data")


def test_max_side_caps_large_images_and_scales_their_points(tmp_path, private_data_dir):
    from PIL import Image

    from cdomain.data.crowd_formats import CrowdOptions, open_crowd
    from cdomain.jpeg.encode import write_jpeg

    root = tmp_path / "qnrf"
    write_qnrf(root, counts=(3, 2))
    big = root / "Test" / "img_0001.jpg"
    rng = np.random.default_rng(5)
    write_jpeg(rng.integers(0, 256, size=(120, 200, 3), dtype=np.uint8), big, 75)
    points = np.array([[10.0, 20.0], [199.5, 119.0], [100.0, 60.0]])
    savemat(str(root / "Test" / "img_0001_ann.mat"), {"annPoints": points})
    before = big.read_bytes()
    _, splits, targets = open_crowd(root, options=CrowdOptions(max_side=100))
    paths, names = splits["test"].paths, sorted(p.name for p in (root / "Test").glob("*.jpg"))
    copy = Path(paths[0])
    assert copy.parent.parent == private_data_dir / "crowd-resized" and big.read_bytes() == before
    with Image.open(copy) as image:
        assert image.size == (100, 60)
    assert targets["test"].points[0] == pytest.approx(points * 0.5)
    assert targets["test"].count(0) == 3
    assert [Path(p).name for p in paths[1:]] == names[1:]  # within the cap: the original file
    with Image.open(root / "Test" / names[1]) as image:
        assert max(image.size) <= 100
    _, again, _ = open_crowd(root, options=CrowdOptions(max_side=100))
    assert again["test"].paths == splits["test"].paths and copy.stat().st_mtime_ns == Path(again["test"].paths[0]).stat().st_mtime_ns


def test_folder_options_are_refused_for_embedded_datasets():
    from cdomain.data.crowd_formats import CrowdOptions

    with pytest.raises(DataError, match="^crowd-tiny: --density and --max-side apply to crowd dataset folders, "
                                        "not embedded datasets$"):
        open_dataset("crowd-tiny", "counting", crowd=CrowdOptions(density="fixed", max_side=100))
    with pytest.raises(DataError, match="^textures-tiny: --format applies to crowd dataset folders"):
        open_dataset("textures-tiny", "classification", format="points")
    with pytest.raises(DataError, match="^crowd-tiny: --format, --val-fraction and --sigma apply to crowd"):
        open_dataset("crowd-tiny", "counting", format="points", crowd=CrowdOptions(val_fraction=0.2, sigma=4.0))
    assert open_dataset("crowd-tiny", "counting", crowd=CrowdOptions()).embedded
