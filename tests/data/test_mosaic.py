"""The embedded mosaic (segmentation) set: deterministic rendering, atomic generation, and label
maps that follow the loaders' crops and flips exactly, at pixel resolution for RGB input and on
the 8x8 block grid for DCT input."""

from __future__ import annotations

import numpy as np
import pytest

from cdomain.data.dct_transforms import Region
from cdomain.data.loader import DCTLoader, RGBLoader
from cdomain.data.mosaic import IGNORE_INDEX, LABELS_FILE, MOSAIC, SegmentationTarget, mosaic_root, mosaic_split, render_mosaic
from cdomain.data.registry import open_dataset
from cdomain.data.textures import CLASSES
from cdomain.errors import DataError
from cdomain.jpeg.encode import write_jpeg


def test_render_is_deterministic_and_labels_are_distinct_regions():
    image, labels = render_mosaic(5, 64, (2, 5))
    again, again_labels = render_mosaic(5, 64, (2, 5))
    assert np.array_equal(image, again) and np.array_equal(labels, again_labels)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and labels.shape == (64, 64)
    assert not np.array_equal(image, render_mosaic(6, 64, (2, 5))[0])
    counts = [len(np.unique(render_mosaic(seed, 64, (2, 5))[1])) for seed in range(20)]
    assert min(counts) >= 1 and max(counts) <= 5 and max(counts) >= 3
    assert all(set(np.unique(render_mosaic(seed, 32, (2, 3))[1])) <= set(range(len(CLASSES))) for seed in range(5))


def test_regions_are_convex_voronoi_cells():
    """A Voronoi cell is convex: every row and every column crosses each label in one run."""
    for seed in range(10):
        _, labels = render_mosaic(seed, 64, (2, 5))
        for line in (*labels, *labels.T):
            runs = line[np.r_[True, line[1:] != line[:-1]]]
            assert len(runs) == len(set(runs.tolist())), (seed, runs)


def test_target_crops_flips_and_pads_by_hand():
    labels = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
    target = SegmentationTarget(labels)
    assert target(0, Region(1, 2, 2, 2)).tolist() == [[6, 7], [10, 11]]
    assert target(0, Region(1, 2, 2, 2, flipped=True)).tolist() == [[7, 6], [11, 10]]
    padded = target(0, Region(-1, -1, 6, 6))
    assert padded.dtype == np.int64 and padded.shape == (6, 6)
    assert (padded[0] == IGNORE_INDEX).all() and (padded[:, 5] == IGNORE_INDEX).all()
    assert padded[1:5, 1:5].tolist() == labels[0].tolist()
    with pytest.raises(ValueError, match="N, H, W"):
        SegmentationTarget(np.zeros((4, 4)))


def _block_image(tmp_path, seed: int, size: int = 64):
    """A grayscale q100 JPEG whose 8x8 blocks are flat at grey 25 * label + 5, and its labels."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 10, size=(size // 8, size // 8))
    labels = np.kron(blocks, np.ones((8, 8), dtype=np.int64)).astype(np.uint8)
    path = write_jpeg((25 * labels + 5).astype(np.uint8), tmp_path / f"{seed}.jpg", 100)
    return str(path), labels


def test_rgb_crops_and_flips_keep_pixels_and_labels_aligned(tmp_path):
    files = [_block_image(tmp_path, seed) for seed in range(3)]
    target = SegmentationTarget(np.stack([labels for _, labels in files]))
    loader = RGBLoader([(path, 0) for path, _ in files], batch_size=3, crop=32, augment=True, shuffle=False, seed=1,
                       target=target)
    flips = 0
    for _ in range(4):  # epochs: new random offsets and flips
        for pixels, maps in loader:
            assert maps.shape == (3, 32, 32)
            decoded = np.rint((pixels[:, 0].numpy() - 5) / 25)
            assert np.array_equal(decoded, maps.numpy())
    for epoch in range(4):
        loader.dataset.epoch = epoch
        flips += sum(loader.dataset.load_region(i)[1].flipped for i in range(3))
    assert 0 < flips < 12  # both flipped and unflipped crops were checked


def test_dct_crops_are_block_aligned_and_labels_follow(tmp_path):
    """DCT input: each block's DC coefficient (channel 0 of the merged layout, dequantized,
    8 x (mean - 128)) gives its grey level, hence its label; the label map cut at the same
    pixel offsets must show that label on all 64 pixels of the block."""
    files = [_block_image(tmp_path, seed) for seed in range(3)]
    target = SegmentationTarget(np.stack([labels for _, labels in files]))
    loader = DCTLoader([(path, 0) for path, _ in files], batch_size=3, crop=32, augment=True, shuffle=False, seed=2,
                       fbs=1, target=target)
    for _ in range(4):
        for coefficients, maps in loader:
            assert coefficients.shape == (3, 3, 4, 4) and maps.shape == (3, 32, 32)
            block_labels = np.rint((coefficients[:, 0].numpy() / 8 + 128 - 5) / 25)
            expected = np.kron(block_labels, np.ones((8, 8)))
            assert np.array_equal(expected, maps.numpy())


def test_generated_set_matches_its_labels_and_is_atomic():
    dataset = open_dataset("mosaic-tiny", "segmentation")
    spec = MOSAIC["mosaic-tiny"]
    assert dataset.classes == tuple(CLASSES) and len(dataset.split("train")) == spec.train
    paths, labels = mosaic_split("mosaic-tiny", "val")
    assert labels.shape == (spec.val, spec.size, spec.size) and len(paths) == spec.val
    # the stored label map is the rendered one, row for row
    seed = int(paths[0].rsplit("/", 1)[1].split(".")[0])
    assert np.array_equal(labels[0], render_mosaic(seed, spec.size, spec.regions)[1])
    root = mosaic_root("mosaic-tiny")
    assert not [p for p in root.parent.iterdir() if p.name.startswith(f".{root.name}.")]  # no staging left
    with pytest.raises(DataError, match="--task segmentation"):
        open_dataset("mosaic-tiny", "classification")
    with pytest.raises(DataError, match="mosaic"):
        open_dataset("textures-tiny", "segmentation")


def test_corrupt_label_file_is_one_clear_error():
    open_dataset("mosaic-tiny", "segmentation")
    path = mosaic_root("mosaic-tiny") / LABELS_FILE
    saved = path.read_bytes()
    try:
        path.write_bytes(b"not a safetensors file")
        with pytest.raises(DataError, match=LABELS_FILE):
            mosaic_split("mosaic-tiny", "train")
    finally:
        path.write_bytes(saved)
