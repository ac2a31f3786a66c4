"""The embedded crowd dataset: deterministic scenes, valid head points, atomic generation, and
density-map targets that stay aligned with the loaders' crops and flips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cdomain import read_coefficients
from cdomain.data.crowd import CROWD, POINTS_FILE, crowd_dataset, crowd_root, crowd_split, render_crowd
from cdomain.data.density import density_target
from cdomain.data.loader import DCTLoader, RGBLoader
from cdomain.jpeg.encode import write_jpeg


def test_render_is_deterministic_and_varied():
    first, again = render_crowd(3, 64, 12), render_crowd(3, 64, 12)
    assert np.array_equal(first.image, again.image) and np.array_equal(first.points, again.points)
    assert not np.array_equal(first.image, render_crowd(4, 64, 12).image)
    assert first.image.shape == (64, 64, 3) and first.image.dtype == np.uint8
    assert first.points.dtype == np.float32 and first.points.shape[1] == 2


@pytest.mark.parametrize("seed", range(6))
def test_every_point_is_a_visible_drawn_head(seed):
    """Points lie in the image, one per drawn head: the map of visible heads shows exactly the
    recorded heads, each at its own centre pixel, so the count is the number of heads drawn."""
    scene = render_crowd(seed, 128, 60)
    points, heads = scene.points, scene.heads
    assert ((points >= 0) & (points < 128)).all()
    visible = set(np.unique(heads).tolist()) - {-1}
    assert visible == set(range(len(points)))
    for index, (x, y) in enumerate(points):
        assert heads[int(y), int(x)] == index
    assert (1.0 <= scene.radii).all() and (scene.radii <= 7.0).all()


def test_counts_span_the_range_and_can_be_chosen():
    counts = [len(render_crowd(seed, 128, 60).points) for seed in range(16)]
    assert min(counts) <= 10 and max(counts) >= 45
    empty = render_crowd(0, 64, 12, count=0)
    assert len(empty.points) == 0 and (empty.heads == -1).all()
    assert len(render_crowd(1, 128, 60, count=40).points) == 40


def test_crowd_tiny_is_generated_once_with_points(private_data_dir):
    spec = CROWD["crowd-tiny"]
    root = crowd_dataset("crowd-tiny")
    assert root == crowd_root("crowd-tiny") and root.parent == private_data_dir
    files = sorted(root.glob("train/*.jpg"))
    assert len(files) == spec.train and len(list(root.glob("val/*.jpg"))) == spec.val
    image = read_coefficients(files[0])
    assert image.quality() == spec.quality and image.subsampling == "4:2:0"
    assert (image.height, image.width) == (spec.size, spec.size)
    record = json.loads((root / POINTS_FILE).read_text())
    assert set(record["points"]) == {"train", "val"} and len(record["points"]["train"]) == spec.train
    stamp = files[0].stat().st_mtime_ns
    assert crowd_dataset("crowd-tiny") == root and files[0].stat().st_mtime_ns == stamp
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_split_matches_the_renderer():
    spec = CROWD["crowd-tiny"]
    paths, points = crowd_split("crowd-tiny", "val")
    assert len(paths) == len(points) == spec.val
    for path, pts in zip(paths, points):
        seed = int(path.rsplit("/", 1)[1].split(".")[0])
        assert np.allclose(pts, render_crowd(seed, spec.size, spec.max_count).points, atol=1e-3)
    train_paths, _ = crowd_split("crowd-tiny", "train")
    assert not set(train_paths) & set(paths)
    with pytest.raises(ValueError, match="split"):
        crowd_split("crowd-tiny", "test")
    with pytest.raises(KeyError, match="crowd-huge"):
        crowd_split("crowd-huge")


@pytest.mark.parametrize("loader_class", [DCTLoader, RGBLoader])
def test_loader_targets_are_density_maps_that_sum_to_the_counts(loader_class):
    paths, points = crowd_split("crowd-tiny", "train")
    counts = torch.tensor([len(p) for p in points], dtype=torch.float32)
    loader = loader_class(paths, batch_size=4, fbs=4, target=density_target(points), augment=True, shuffle=False)
    size = CROWD["crowd-tiny"].size
    seen = 0
    for inputs, targets in loader:  # whole images, randomly flipped: every head stays inside
        batch = inputs.shape[0]
        assert targets.shape == (batch, 1, size // 8, size // 8) and targets.dtype == torch.float32
        assert inputs.shape[-2:] == ((size // 8, size // 8) if loader_class is DCTLoader else (size, size))
        torch.testing.assert_close(targets.sum(dim=(1, 2, 3)), counts[seen : seen + batch], atol=1e-4, rtol=0)
        seen += batch
    assert seen == len(paths)
    cropped = loader_class(paths, batch_size=4, fbs=4, target=density_target(points), crop=32, augment=True)
    for _, targets in cropped:  # random crops keep a whole number of heads
        sums = targets.sum(dim=(1, 2, 3))
        assert targets.shape[-2:] == (4, 4)
        torch.testing.assert_close(sums, sums.round(), atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def bright_heads(tmp_path_factory):
    """A dark 96x96 image and a dark 32x32 one, each with one bright head at a known point (a
    cell centre on the 8 px grid; the first head lies in every 64 px crop of its image)."""
    folder = tmp_path_factory.mktemp("heads")
    files, points = [], []
    for size, (x, y) in [(96, (44.0, 52.0)), (32, (12.0, 20.0))]:
        pixels = np.full((size, size, 3), 30, dtype=np.uint8)
        rows, cols = np.mgrid[0:size, 0:size] + 0.5
        pixels[np.hypot(cols - x, rows - y) <= 3.0] = 250
        files.append(str(write_jpeg(pixels, folder / f"{size}.jpg", 95)))
        points.append(np.array([[x, y]], dtype=np.float32))
    return files, points


def _peak(grid: torch.Tensor) -> tuple[int, int]:
    index = int(grid.flatten().argmax())
    return divmod(index, grid.shape[-1])


@pytest.mark.parametrize("loader_class", [DCTLoader, RGBLoader])
def test_targets_follow_random_crops_flips_and_padding(loader_class, bright_heads):
    """Over several epochs of random 64 px crops and flips (the 32 px image is centred on a
    padded canvas: its region starts at -16 px), the density peak sits on the bright head in
    the input: pixels for RGB, the luma DC coefficients for DCT."""
    files, points = bright_heads
    loader = loader_class(files, batch_size=2, fbs=1, crop=64, target=density_target(points), augment=True,
                          shuffle=False, seed=3)
    flips, peaks = set(), set()
    for epoch in range(6):
        loader.set_epoch(epoch)
        regions = [loader.dataset.load_region(index)[1] for index in range(2)]
        assert (regions[1].top, regions[1].left) == (-16, -16)
        flips.update(region.flipped for region in regions)
        inputs, targets = next(iter(loader))
        assert targets.shape == (2, 1, 8, 8)
        for sample in range(2):
            if loader_class is RGBLoader:
                brightness = torch.nn.functional.avg_pool2d(inputs[sample : sample + 1].mean(1, keepdim=True), 8)[0, 0]
            else:
                brightness = inputs[sample, 0]  # the Y DC coefficient of each block
            peak = _peak(targets[sample, 0])
            assert peak == _peak(brightness)
            assert targets[sample].sum().item() == pytest.approx(1.0, abs=1e-5)
            peaks.add((sample, peak))
    assert flips == {False, True} and len(peaks) > 2
