"""The embedded crowd-counting dataset: people drawn as head-and-body figures, with head points.

No crowd dataset can be downloaded where cdomain often runs, so one is generated, in the spirit
of ShanghaiTech and similar sets: each image shows 0 to ``max_count`` people on a varied scene
(a colour gradient, often a horizon, with textures and background clutter), and each person's
head centre is recorded as a point. People are a head (a skin-toned disc, usually with a hair
cap) on a body (a rounded rectangle or an ellipse in clothing colours). Their size follows a
simple perspective, small near the horizon and larger towards the bottom, with some jitter;
they stand scattered or in groups, and nearer people are drawn over farther ones, so bodies
occlude bodies and heads partly cover heads. Heads are small (radius about 1.5 to 6 px at
128 px), so heavy JPEG compression, which removes fine detail, visibly hurts counting.

Files are real JPEGs (IJG quality 90, 4:2:0 chroma), generated on first use into::

    $CDOMAIN_DATA/crowd-v1/{train,val}/<seed>.jpg
    $CDOMAIN_DATA/crowd-v1/points.json

``points.json`` maps each split and file name to its head points ``[[x, y], ...]``. Points are
continuous pixel coordinates: the image spans ``[0, width) x [0, height)`` and pixel
``(row i, column j)`` covers ``[j, j + 1) x [i, i + 1)``, so its centre is ``(j + 0.5, i + 0.5)``.
The tree is built in a temporary folder and renamed into place in one step
(:func:`cdomain.data.embedded.build_once`). :func:`crowd_split` returns a split's file paths
and points, ready for a loader with :func:`cdomain.data.density.density_target`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from cdomain.data.embedded import build_once, data_dir

__all__ = ["CROWD", "CrowdImage", "CrowdSpec", "crowd_dataset", "crowd_root", "crowd_split", "render_crowd"]

POINTS_FILE = "points.json"
SPLITS = ("train", "val")
#: Validation images use seeds from here on, so they never repeat a training image.
VAL_SEED_OFFSET = 1 << 20


@dataclass(frozen=True)
class CrowdSpec:
    """How a crowd dataset is generated: images per split, size, counts and JPEG quality."""

    version: int
    train: int  # training images
    val: int  # validation images
    size: int  # square images of this many pixels per side
    max_count: int  # people per image are uniform in 0..max_count
    quality: int  # IJG JPEG quality of the files


CROWD: dict[str, CrowdSpec] = {
    "crowd": CrowdSpec(version=1, train=400, val=100, size=128, max_count=60, quality=90),
    "crowd-tiny": CrowdSpec(version=1, train=12, val=6, size=64, max_count=12, quality=90),
}


@dataclass(frozen=True)
class CrowdImage:
    """One rendered scene: pixels, head points and radii, and which head each pixel shows."""

    image: np.ndarray  # uint8 [H, W, 3]
    points: np.ndarray  # float32 [N, 2] head centres (x, y), in drawing order (far to near)
    radii: np.ndarray  # float32 [N] head radii in pixels
    heads: np.ndarray  # int32 [H, W]: index of the visible head at each pixel, -1 elsewhere


# ---------------------------------------------------------------------------------------------
# Drawing: shapes as signed distance functions, painted with anti-aliased coverage.

_SKIN = np.array([[255, 224, 196], [236, 188, 140], [205, 150, 105], [160, 110, 70], [110, 72, 45], [75, 50, 35]])
_HAIR = np.array([[20, 15, 12], [60, 40, 25], [110, 75, 40], [200, 170, 110], [150, 150, 150], [130, 45, 25]])

Sdf = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _paint(canvas: np.ndarray, box: tuple[float, float, float, float], sdf: Sdf, colour: np.ndarray,
           covers: np.ndarray | None = None, value: int = 0) -> None:
    """Blend ``colour`` into ``canvas`` where the shape's signed distance is negative.

    ``box`` is ``(x0, y0, x1, y1)``, the shape's extent; coverage ``clip(0.5 - sdf, 0, 1)``
    anti-aliases the edge. Where the shape covers at least half a pixel, ``covers`` (an int map
    of the canvas's size), if given, is set to ``value``.
    """
    height, width = canvas.shape[:2]
    top, bottom = max(0, int(np.floor(box[1])) - 1), min(height, int(np.ceil(box[3])) + 2)
    left, right = max(0, int(np.floor(box[0])) - 1), min(width, int(np.ceil(box[2])) + 2)
    if top >= bottom or left >= right:
        return
    ys, xs = np.mgrid[top:bottom, left:right].astype(np.float64) + 0.5
    alpha = np.clip(0.5 - sdf(xs, ys), 0.0, 1.0)[..., None]
    patch = canvas[top:bottom, left:right]
    patch *= 1.0 - alpha
    patch += alpha * colour
    if covers is not None:
        covers[top:bottom, left:right][alpha[..., 0] >= 0.5] = value


def _disc(cx: float, cy: float, r: float) -> Sdf:
    return lambda xs, ys: np.hypot(xs - cx, ys - cy) - r


def _ellipse(cx: float, cy: float, a: float, b: float) -> Sdf:
    # scaled radial distance: exact on the axes, close enough elsewhere for anti-aliasing
    return lambda xs, ys: (np.hypot((xs - cx) / a, (ys - cy) / b) - 1.0) * min(a, b)


def _rounded_box(cx: float, cy: float, half_w: float, half_h: float, radius: float) -> Sdf:
    radius = min(radius, half_w, half_h)

    def sdf(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        qx = np.abs(xs - cx) - half_w + radius
        qy = np.abs(ys - cy) - half_h + radius
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
        return outside + np.minimum(np.maximum(qx, qy), 0) - radius

    return sdf


def _intersect(first: Sdf, second: Sdf) -> Sdf:
    return lambda xs, ys: np.maximum(first(xs, ys), second(xs, ys))


# ---------------------------------------------------------------------------------------------
# Scenes.


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Band-limited noise in about [-1, 1]: a ``cells`` x ``cells`` random grid, bilinearly upsampled."""
    grid = rng.uniform(-1, 1, size=(cells + 1, cells + 1))
    position = np.linspace(0, cells, size, endpoint=False) + 0.5 * cells / size
    low = np.minimum(position.astype(int), cells - 1)
    frac = position - low
    rows = grid[low] * (1 - frac)[:, None] + grid[low + 1] * frac[:, None]
    return rows[:, low] * (1 - frac)[None, :] + rows[:, low + 1] * frac[None, :]


def _background(rng: np.random.Generator, size: int, horizon: float) -> np.ndarray:
    """Gradient ground, often under a lighter sky at the horizon, with texture and clutter."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) / size
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * ys + np.sin(angle) * xs
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
    first = rng.uniform(50, 200, size=3)
    second = np.clip(first + rng.uniform(-70, 70, size=3), 0, 255)
    canvas = first * (1 - ramp[..., None]) + second * ramp[..., None]
    if rng.random() < 0.5:  # sky above the horizon
        sky = rng.uniform(150, 250, size=3)
        above = (ys * size < horizon)[..., None]
        canvas = np.where(above, sky * (1 - 0.3 * ys[..., None]), canvas)
    if rng.random() < 0.7:  # texture: patches, paving stripes or grain
        kind = rng.integers(3)
        if kind == 0:
            pattern = _smooth_noise(rng, size, int(rng.integers(3, 10)))
            amplitude = rng.uniform(10, 35)
        elif kind == 1:
            theta = rng.uniform(0, np.pi)
            period = rng.uniform(5, 20) / size
            pattern = np.sin(2 * np.pi * (np.cos(theta) * ys + np.sin(theta) * xs) / period)
            amplitude = rng.uniform(5, 18)
        else:
            pattern = rng.standard_normal((size, size))
            amplitude = rng.uniform(3, 10)
        canvas = canvas + amplitude * pattern[..., None] * rng.uniform(0.6, 1.0, size=3)
    if rng.random() < 0.6:  # clutter: boxes (benches, stalls), bushes and poles behind the people
        scale = size / 128
        for _ in range(int(rng.integers(1, 8))):
            colour = rng.uniform(30, 220, size=3)
            cx, cy = rng.uniform(0, size, size=2)
            kind = rng.integers(3)
            if kind == 0:
                hw, hh = rng.uniform(4, 20) * scale, rng.uniform(2, 14) * scale
                _paint(canvas, (cx - hw, cy - hh, cx + hw, cy + hh), _rounded_box(cx, cy, hw, hh, rng.uniform(0, 3)), colour)
            elif kind == 1:
                a, b = rng.uniform(6, 18) * scale, rng.uniform(4, 12) * scale
                _paint(canvas, (cx - a, cy - b, cx + a, cy + b), _ellipse(cx, cy, a, b), colour)
            else:
                hw, hh = rng.uniform(0.6, 1.5) * scale, rng.uniform(10, 30) * scale
                _paint(canvas, (cx - hw, cy - hh, cx + hw, cy + hh), _rounded_box(cx, cy, hw, hh, 0.0), colour)
    return canvas


def _place(rng: np.random.Generator, size: int, count: int, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """Head centres and radii for up to ``count`` people, sorted far (top) to near (bottom).

    Radii grow linearly from the horizon to the bottom edge (perspective) with +-15% jitter.
    People are scattered uniformly or gathered around a few group centres. A candidate is
    rejected when its head would sit too close to another (centres nearer than 0.75 x the sum
    of the radii, or inside the nearer head plus one pixel), so every head stays visible;
    very dense draws may therefore place fewer than ``count`` people.
    """
    scale = size / 128
    r_far = max(1.2, rng.uniform(1.4, 2.4) * scale)
    r_near = min(6.5 * scale, r_far * rng.uniform(1.3, 2.6))
    r_near = max(r_near, r_far)
    groups = rng.uniform([0, horizon], [size, size], size=(int(rng.integers(0, 4)), 2))
    spreads = rng.uniform(0.05, 0.2, size=len(groups)) * size
    grouped = rng.uniform(0.3, 0.9) if len(groups) else 0.0
    points: list[tuple[float, float]] = []
    radii: list[float] = []
    for _ in range(30 * count):
        if len(points) == count:
            break
        if rng.random() < grouped:
            which = int(rng.integers(len(groups)))
            x, y = groups[which] + rng.normal(0, spreads[which], size=2)
        else:
            x, y = rng.uniform(0, size), rng.uniform(horizon, size)
        if not (0.5 <= x < size - 0.5 and max(horizon, 0.5) <= y < size - 0.5):
            continue
        depth = (y - horizon) / max(size - horizon, 1e-9)
        r = (r_far + (r_near - r_far) * depth) * rng.uniform(0.85, 1.15)
        if points:
            others = np.asarray(points)
            other_r = np.asarray(radii)
            distance = np.hypot(others[:, 0] - x, others[:, 1] - y)
            nearer_r = np.where(others[:, 1] > y, other_r, r)  # the lower head is drawn on top
            if np.any(distance < 0.75 * (other_r + r)) or np.any(distance < nearer_r + 1.0):
                continue
        points.append((x, y))
        radii.append(r)
    order = np.argsort([y for _, y in points], kind="stable")
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)[order], np.asarray(radii, dtype=np.float64)[order]


def render_crowd(seed: int, size: int = 128, max_count: int = 60, count: int | None = None) -> CrowdImage:
    """Render crowd scene ``seed``: ``count`` people (default: uniform in 0..``max_count``).

    Deterministic in ``(seed, size, max_count, count)``. Returns the uint8 image, the head
    points (x, y) and radii, and the map of visible heads, which shows that every recorded head
    is drawn and visible (at least its centre pixel).
    """
    rng = np.random.default_rng([seed, size, max_count])
    if count is None:
        count = int(rng.integers(0, max_count + 1))
    horizon = rng.uniform(0.03, 0.35) * size
    canvas = _background(rng, size, horizon)
    points, radii = _place(rng, size, count, horizon)
    heads = np.full((size, size), -1, dtype=np.int32)
    for index, ((x, y), r) in enumerate(zip(points, radii)):
        half_w = r * rng.uniform(0.85, 1.25)
        height = r * rng.uniform(3.0, 4.5)
        top = y + 0.75 * r
        clothes = rng.uniform(20, 235, size=3)
        if rng.random() < 0.5:
            body = _rounded_box(x, top + height / 2, half_w, height / 2, half_w * 0.6)
        else:
            body = _ellipse(x, top + height / 2, half_w, height / 2)
        _paint(canvas, (x - half_w, top, x + half_w, top + height), body, clothes, heads, -1)
        skin = np.clip(_SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.9, 1.1), 0, 255)
        box = (x - r, y - r, x + r, y + r)
        _paint(canvas, box, _disc(x, y, r), skin, heads, index)
        if rng.random() < 0.75:  # hair on the upper part of the head (part of the head)
            hair = _HAIR[rng.integers(len(_HAIR))]
            line = y - rng.uniform(0.0, 0.4) * r
            _paint(canvas, box, _intersect(_disc(x, y, r), lambda xs, ys, line=line: ys - line), hair)
    canvas += rng.normal(0, rng.uniform(0.5, 4), size=canvas.shape)  # sensor noise
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return CrowdImage(image, points.astype(np.float32), radii.astype(np.float32), heads)


# ---------------------------------------------------------------------------------------------
# The dataset on disk.


def crowd_root(name: str = "crowd") -> Path:
    """Where crowd dataset ``name`` lives (or will live once generated)."""
    if name not in CROWD:
        raise KeyError(f"unknown crowd dataset {name!r}; known: {', '.join(CROWD)}")
    return data_dir() / f"{name}-v{CROWD[name].version}"


def crowd_dataset(name: str = "crowd", *, progress: bool | None = None) -> Path:
    """Return the root of crowd dataset ``name`` (``"crowd"`` or ``"crowd-tiny"``), generating
    it on first use. ``progress`` shows a progress bar (default: when stderr is a terminal)."""
    show = sys.stderr.isatty() if progress is None else progress
    return build_once(crowd_root(name), lambda staging: _write_dataset(staging, CROWD[name], name, show))


def _write_dataset(root: Path, spec: CrowdSpec, name: str, progress: bool) -> None:
    from cdomain.jpeg.encode import write_jpeg

    jobs = [(split, offset + index) for split, total, offset in (("train", spec.train, 0), ("val", spec.val, VAL_SEED_OFFSET))
            for index in range(total)]
    points: dict[str, dict[str, list[list[float]]]] = {split: {} for split in SPLITS}
    for split, seed in tqdm(jobs, desc=f"generating {name}", unit="img", disable=not progress, leave=False):
        scene = render_crowd(seed, spec.size, spec.max_count)
        file_name = f"{seed:07d}.jpg"
        write_jpeg(scene.image, root / split / file_name, spec.quality)
        points[split][file_name] = [[round(float(x), 3), round(float(y), 3)] for x, y in scene.points]
    record = {"name": name, "version": spec.version, "size": spec.size, "quality": spec.quality,
              "coordinates": "x, y in pixels; pixel (i, j) covers [j, j+1) x [i, i+1)", "points": points}
    (root / POINTS_FILE).write_text(json.dumps(record, separators=(",", ":")))


def crowd_split(name: str = "crowd", split: str = "train", *, progress: bool | None = None) -> tuple[list[str], list[np.ndarray]]:
    """File paths and head points of one split of crowd dataset ``name`` (generated if needed).

    Returns ``(paths, points)``: ``points[i]`` is a float32 ``[N_i, 2]`` array of ``(x, y)``
    head centres of ``paths[i]``, in pixels (see the module docstring for the convention).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    root = crowd_dataset(name, progress=progress)
    record = json.loads((root / POINTS_FILE).read_text())
    files = sorted(record["points"][split])
    paths = [str(root / split / file_name) for file_name in files]
    points = [np.asarray(record["points"][split][f], dtype=np.float32).reshape(-1, 2) for f in files]
    return paths, points
