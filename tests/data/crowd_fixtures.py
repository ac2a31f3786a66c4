"""Tiny crowd datasets written in the published on-disk layouts, for the format readers' tests.

Every writer returns ``{split: {image file name: points}}`` with the float64 ``[N, 2]`` (x, y)
points it wrote, so tests can compare every point read against what is on disk. ``.mat`` files
are written with ``scipy.io.savemat``; images are small real JPEGs of varied sizes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.io import savemat

from cdomain.jpeg.encode import write_jpeg

Written = dict[str, dict[str, np.ndarray]]

#: Image sizes (width, height) cycled through, multiples of 16 and not.
SIZES = ((64, 48), (80, 64), (72, 56), (64, 64))


def _image(path: Path, index: int, rng: np.random.Generator) -> tuple[int, int]:
    width, height = SIZES[index % len(SIZES)]
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    write_jpeg(pixels, path, 90)
    return width, height


def _points(rng: np.random.Generator, width: int, height: int, index: int) -> np.ndarray:
    count = (0, 1, 2, 7, 12)[index % 5]
    return np.stack([rng.uniform(0, width, count), rng.uniform(0, height, count)], axis=1)


def _cell(location: np.ndarray, layout: str) -> dict:
    """ShanghaiTech's ``image_info``: the release's 1x1 cell holding a struct, or a bare struct."""
    struct = np.empty((1, 1), dtype=[("location", object), ("number", object)])
    struct[0, 0] = (location, np.array([[float(len(location))]]))
    if layout == "cell":
        cell = np.empty((1, 1), dtype=object)
        cell[0, 0] = struct
        return {"image_info": cell}
    return {"image_info": struct}


def write_shanghaitech(root: Path, counts=(6, 3), seed: int = 0, layout: str = "cell") -> Written:
    """``part_X/{train,test}_data/images/IMG_n.jpg`` + ``ground-truth/GT_IMG_n.mat``."""
    rng = np.random.default_rng(seed)
    written: Written = {}
    for split, folder, count in (("train", "train_data", counts[0]), ("test", "test_data", counts[1])):
        written[split] = {}
        for n in range(1, count + 1):
            name = f"IMG_{n}.jpg"
            width, height = _image(root / folder / "images" / name, n, rng)
            points = _points(rng, width, height, n)
            (root / folder / "ground-truth").mkdir(parents=True, exist_ok=True)
            savemat(str(root / folder / "ground-truth" / f"GT_IMG_{n}.mat"),
                    _cell(points, ("cell" if n % 2 else "struct") if layout == "mixed" else layout))
            written[split][name] = points
    return written


def write_qnrf(root: Path, counts=(6, 3), seed: int = 1) -> Written:
    """``Train/img_0001.jpg`` + ``Train/img_0001_ann.mat`` (annPoints), and ``Test/``."""
    rng = np.random.default_rng(seed)
    written: Written = {}
    for split, folder, count in (("train", "Train", counts[0]), ("test", "Test", counts[1])):
        written[split] = {}
        for n in range(1, count + 1):
            name = f"img_{n:04d}.jpg"
            width, height = _image(root / folder / name, n, rng)
            points = _points(rng, width, height, n)
            savemat(str(root / folder / f"img_{n:04d}_ann.mat"), {"annPoints": points})
            written[split][name] = points
    return written


def write_jhu(root: Path, counts=(5, 2, 3), seed: int = 2) -> Written:
    """``{train,val,test}/images/0001.jpg`` + ``gt/0001.txt`` with ``x y w h o b`` lines."""
    rng = np.random.default_rng(seed)
    written: Written = {}
    for split, count in zip(("train", "val", "test"), counts):
        written[split] = {}
        (root / split / "gt").mkdir(parents=True, exist_ok=True)
        for n in range(1, count + 1):
            name = f"{n:04d}.jpg"
            width, height = _image(root / split / "images" / name, n, rng)
            points = np.round(_points(rng, width, height, n), 2)  # the release writes a few decimals
            lines = [f"{x:g} {y:g} {int(rng.integers(4, 30))} {int(rng.integers(4, 30))} {int(rng.integers(1, 4))} "
                     f"{int(rng.integers(0, 2))}" for x, y in points]
            (root / split / "gt" / f"{n:04d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
            written[split][name] = points
    return written


def write_points(root: Path, counts=(6, 3), seed: int = 3) -> Written:
    """The generic layout: ``{train,test}/images/<stem>.jpg`` + ``points/<stem>.json`` or ``.csv``."""
    rng = np.random.default_rng(seed)
    written: Written = {}
    for split, count in (("train", counts[0]), ("test", counts[1])):
        written[split] = {}
        (root / split / "points").mkdir(parents=True, exist_ok=True)
        for n in range(1, count + 1):
            stem = f"frame_{n:03d}"
            width, height = _image(root / split / "images" / f"{stem}.jpg", n, rng)
            points = np.round(_points(rng, width, height, n), 3)
            if n % 3 == 0:
                rows = "\n".join(f"{x!r},{y!r}" for x, y in points.tolist())
                (root / split / "points" / f"{stem}.csv").write_text("x,y\n" + rows + "\n")
            elif n % 3 == 1:
                (root / split / "points" / f"{stem}.json").write_text(json.dumps(points.tolist()))
            else:
                (root / split / "points" / f"{stem}.json").write_text(json.dumps({"points": points.tolist()}))
            written[split][f"{stem}.jpg"] = points
    return written


WRITERS = {"shanghaitech": write_shanghaitech, "qnrf": write_qnrf, "jhu": write_jhu, "points": write_points}
