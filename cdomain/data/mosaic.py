"""The embedded segmentation dataset: texture mosaics with per-pixel class labels.

Segmentation is the "complex task" of the compression-impact studies: every pixel must keep its
class, so it needs the fine detail that heavy JPEG compression removes, near region boundaries
above all. No segmentation dataset can be downloaded where cdomain often runs, so one is
generated from the same procedural textures as the classification set
(:mod:`cdomain.data.textures`): each image is a Voronoi partition into 2 to 5 regions, each
region filled with a texture of a different class, and its label map says which class each
pixel shows (pixel ``(i, j)`` belongs to the site nearest its centre ``(i + 0.5, j + 0.5)``).

Files are real JPEGs (IJG quality 90, 4:2:0 chroma), generated on first use into::

    $CDOMAIN_DATA/mosaic-v1/{train,val}/<seed>.jpg
    $CDOMAIN_DATA/mosaic-v1/labels.safetensors

``labels.safetensors`` holds one uint8 ``[N, H, W]`` tensor per split (rows in file-name
order, the names listed in its metadata). The tree is built in a temporary folder and renamed
into place in one step (:func:`cdomain.data.embedded.build_once`). :func:`mosaic_split` returns
a split's file paths and label maps; :class:`SegmentationTarget` cuts a label map to a loader's
crop and flip.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cdomain.data.dct_transforms import Region
from cdomain.data.embedded import build_once, data_dir
from cdomain.data.textures import CLASSES, render
from cdomain.errors import DataError

__all__ = ["IGNORE_INDEX", "MOSAIC", "MosaicSpec", "SegmentationTarget", "mosaic_dataset", "mosaic_root",
           "mosaic_split", "render_mosaic"]

LABELS_FILE = "labels.safetensors"
SPLITS = ("train", "val")
#: Validation images use seeds from here on, so they never repeat a training image.
VAL_SEED_OFFSET = 1 << 20
#: Label of pixels that are not part of the image (padding of small images): no loss, no metric.
IGNORE_INDEX = 255


@dataclass(frozen=True)
class MosaicSpec:
    """How a mosaic dataset is generated: images per split, size, regions per image, JPEG quality."""

    version: int
    train: int  # training images
    val: int  # validation images
    size: int  # square images of this many pixels per side (a multiple of 16)
    regions: tuple[int, int]  # regions per image, uniform in this range (inclusive)
    quality: int  # IJG JPEG quality of the files


MOSAIC: dict[str, MosaicSpec] = {
    "mosaic": MosaicSpec(version=1, train=480, val=120, size=64, regions=(2, 5), quality=90),
    "mosaic-tiny": MosaicSpec(version=1, train=12, val=6, size=32, regions=(2, 3), quality=90),
}


def render_mosaic(seed: int, size: int = 64, regions: tuple[int, int] = (2, 5)) -> tuple[np.ndarray, np.ndarray]:
    """Render mosaic ``seed``: uint8 ``[size, size, 3]`` pixels and uint8 ``[size, size]`` labels.

    Deterministic in ``(seed, size, regions)``. Regions are the Voronoi cells of random sites;
    each gets a distinct texture class, drawn whole at full size and shown through its cell.
    Every label in the map is the class of a region that covers at least one pixel.
    """
    rng = np.random.default_rng([seed, size, regions[0], regions[1], 16])
    count = int(rng.integers(regions[0], regions[1] + 1))
    classes = rng.choice(len(CLASSES), size=count, replace=False)
    sites = rng.uniform(0, size, size=(count, 2))
    centres = np.arange(size, dtype=np.float64) + 0.5
    rows, cols = np.meshgrid(centres, centres, indexing="ij")
    distance = (rows[..., None] - sites[:, 0]) ** 2 + (cols[..., None] - sites[:, 1]) ** 2
    cell = distance.argmin(axis=-1)
    image = np.zeros((size, size, 3), dtype=np.uint8)
    for index, label in enumerate(classes):
        inside = cell == index
        if inside.any():
            texture = render(int(label), int(rng.integers(1 << 30)), size)
            image[inside] = texture[inside]
    labels = classes[cell].astype(np.uint8)
    return image, labels


# ---------------------------------------------------------------------------------------------
# Targets that follow the loader's crop and flip.


class SegmentationTarget:
    """``target(index, region)`` for the JPEG loaders: sample ``index``'s label map cut to ``region``.

    The crop uses the same pixel offsets as the image crop (block-aligned for DCT input, since
    the loaders cut whole MCUs); a flipped region mirrors the columns. Pixels of the region that
    lie outside the image (padding of small images) get :data:`IGNORE_INDEX`. Returns int64
    ``[height, width]``. A plain class, so loader worker processes can pickle it.
    """

    def __init__(self, labels: np.ndarray) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 3:
            raise ValueError(f"label maps must be [N, H, W], got shape {labels.shape}")
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __call__(self, index: int, region: Region) -> np.ndarray:
        source = self.labels[index]
        out = np.full((region.height, region.width), IGNORE_INDEX, dtype=np.int64)
        top, left = max(region.top, 0), max(region.left, 0)
        bottom = min(region.top + region.height, source.shape[0])
        right = min(region.left + region.width, source.shape[1])
        if top < bottom and left < right:
            rows, cols = slice(top - region.top, bottom - region.top), slice(left - region.left, right - region.left)
            out[rows, cols] = source[top:bottom, left:right]
        return out[:, ::-1].copy() if region.flipped else out


# ---------------------------------------------------------------------------------------------
# The dataset on disk.


def mosaic_root(name: str = "mosaic") -> Path:
    """Where mosaic dataset ``name`` lives (or will live once generated)."""
    if name not in MOSAIC:
        raise KeyError(f"unknown mosaic dataset {name!r}; known: {', '.join(MOSAIC)}")
    return data_dir() / f"{name}-v{MOSAIC[name].version}"


def mosaic_dataset(name: str = "mosaic", *, progress: bool | None = None) -> Path:
    """Return the root of mosaic dataset ``name``, generating it on first use."""
    show = sys.stderr.isatty() if progress is None else progress
    return build_once(mosaic_root(name), lambda staging: _write_dataset(staging, MOSAIC[name], name, show))


def _write_dataset(root: Path, spec: MosaicSpec, name: str, progress: bool) -> None:
    from safetensors.numpy import save_file

    from cdomain.jpeg.encode import write_jpeg

    splits = (("train", spec.train, 0), ("val", spec.val, VAL_SEED_OFFSET))
    jobs = [(split, offset + index) for split, total, offset in splits for index in range(total)]
    labels: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    names: dict[str, list[str]] = {split: [] for split in SPLITS}
    for split, seed in tqdm(jobs, desc=f"generating {name}", unit="img", disable=not progress, leave=False):
        image, label_map = render_mosaic(seed, spec.size, spec.regions)
        file_name = f"{seed:07d}.jpg"
        write_jpeg(image, root / split / file_name, spec.quality)
        labels[split].append(label_map)
        names[split].append(file_name)
    metadata = {"name": name, "version": str(spec.version), "classes": json.dumps(list(CLASSES)),
                **{f"files_{split}": json.dumps(names[split]) for split in SPLITS}}
    save_file({split: np.stack(labels[split]) for split in SPLITS}, str(root / LABELS_FILE), metadata=metadata)


def _plain_name(name) -> bool:
    """A file name that stays inside its split folder (no separators, no parent references)."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


def mosaic_split(name: str = "mosaic", split: str = "train", *,
                 progress: bool | None = None) -> tuple[list[str], np.ndarray]:
    """File paths and uint8 ``[N, H, W]`` label maps of one split (generated if needed)."""
    from safetensors import SafetensorError, safe_open

    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    root = mosaic_dataset(name, progress=progress)
    path = root / LABELS_FILE
    try:
        with safe_open(str(path), framework="numpy") as handle:
            files = json.loads(handle.metadata()[f"files_{split}"])
            labels = handle.get_tensor(split)
    except (OSError, ValueError, KeyError, SafetensorError) as error:
        raise DataError(f"{path}: unreadable label file ({error})") from None
    if labels.ndim != 3 or len(files) != len(labels) or not all(_plain_name(f) for f in files):
        raise DataError(f"{path}: the {split} labels do not match the listed files")
    return [str(root / split / file_name) for file_name in files], labels
