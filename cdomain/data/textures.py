"""Procedural colour textures: the embedded, deterministic default dataset.

No dataset can be downloaded where cdomain is often run, so it generates one. There are ten
classes in five pairs; the two classes of a pair share their coarse structure and differ in
fine detail (grain, fine ripples, fine checks, fine rings, speckles). Colours, orientations,
frequencies and amplitudes are random within each class, so colour alone does not identify a
class. Heavy JPEG compression removes exactly the high frequencies that separate the pairs,
so accuracy visibly drops at low quality, which is what compression studies need.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

TextureFn = Callable[[np.random.Generator, int], np.ndarray]


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coords = np.arange(size, dtype=np.float64)
    return np.meshgrid(coords, coords, indexing="ij")


def _palette(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two random, reasonably distinct RGB colours."""
    first = rng.uniform(40, 215, size=3)
    second = np.clip(first + rng.choice([-1, 1], size=3) * rng.uniform(40, 90, size=3), 0, 255)
    return first, second


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth two-colour gradient in a random direction: the shared coarse structure."""
    rows, cols = _grid(size)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * rows + np.sin(angle) * cols) / size
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
    first, second = _palette(rng)
    return first * (1 - ramp[..., None]) + second * ramp[..., None]


def _oriented_wave(rng: np.random.Generator, size: int, period: tuple[float, float]) -> np.ndarray:
    rows, cols = _grid(size)
    angle = rng.uniform(0, np.pi)
    frequency = 2 * np.pi / rng.uniform(*period)
    return np.sin(frequency * (np.cos(angle) * rows + np.sin(angle) * cols) + rng.uniform(0, 2 * np.pi))


def _checks(rng: np.random.Generator, size: int, period: tuple[float, float]) -> np.ndarray:
    rows, cols = _grid(size)
    angle = rng.uniform(0, np.pi / 2)
    cell = rng.uniform(*period) / 2
    u = (np.cos(angle) * rows + np.sin(angle) * cols) / cell + rng.uniform(0, 2)
    v = (-np.sin(angle) * rows + np.cos(angle) * cols) / cell + rng.uniform(0, 2)
    return np.where((np.floor(u) + np.floor(v)) % 2 == 0, 1.0, -1.0)


def _rings(rng: np.random.Generator, size: int, period: tuple[float, float]) -> np.ndarray:
    rows, cols = _grid(size)
    centre = rng.uniform(0, size, size=2)
    radius = np.hypot(rows - centre[0], cols - centre[1])
    return np.sin(2 * np.pi * radius / rng.uniform(*period))


def _discs(rng: np.random.Generator, size: int, count: int, radius: tuple[float, float], soft: bool) -> np.ndarray:
    rows, cols = _grid(size)
    canvas = np.zeros((size, size))
    for _ in range(count):
        r0, c0 = rng.uniform(0, size, size=2)
        distance = np.hypot(rows - r0, cols - c0) / rng.uniform(*radius)
        canvas += np.exp(-(distance**2)) if soft else (distance <= 1.0)
    return np.clip(canvas, 0, 1)


def _modulate(rng: np.random.Generator, base: np.ndarray, pattern: np.ndarray, amplitude: tuple[float, float]) -> np.ndarray:
    """Add a pattern to every channel with a random amplitude and a random colour tint."""
    tint = rng.uniform(0.6, 1.0, size=3)
    return base + rng.uniform(*amplitude) * pattern[..., None] * tint


def plain(rng: np.random.Generator, size: int) -> np.ndarray:
    return _background(rng, size)


def grain(rng: np.random.Generator, size: int) -> np.ndarray:
    return _modulate(rng, _background(rng, size), rng.standard_normal((size, size)), (14, 26))


def waves(rng: np.random.Generator, size: int) -> np.ndarray:
    return _modulate(rng, _background(rng, size), _oriented_wave(rng, size, (16, 32)), (30, 50))


def ripples(rng: np.random.Generator, size: int) -> np.ndarray:
    return _modulate(rng, waves(rng, size), _oriented_wave(rng, size, (2.5, 4.0)), (14, 24))


def checks(rng: np.random.Generator, size: int) -> np.ndarray:
    return _modulate(rng, _background(rng, size), _checks(rng, size, (20, 32)), (25, 45))


def fine_checks(rng: np.random.Generator, size: int) -> np.ndarray:
    return _modulate(rng, checks(rng, size), _checks(rng, size, (3, 5)), (12, 22))


def rings(rng: np.random.Generator, size: int) -> np.ndarray:
    return _modulate(rng, _background(rng, size), _rings(rng, size, (12, 24)), (30, 50))


def fine_rings(rng: np.random.Generator, size: int) -> np.ndarray:
    return _modulate(rng, rings(rng, size), _rings(rng, size, (2.5, 4.0)), (14, 24))


def spots(rng: np.random.Generator, size: int) -> np.ndarray:
    pattern = _discs(rng, size, int(rng.integers(3, 7)), (size / 10, size / 5), soft=True)
    return _modulate(rng, _background(rng, size), 2 * pattern - 1, (30, 50))


def speckles(rng: np.random.Generator, size: int) -> np.ndarray:
    base = _modulate(
        rng, _background(rng, size), 2 * _discs(rng, size, int(rng.integers(3, 7)), (size / 10, size / 5), True) - 1, (30, 50)
    )
    dots = (rng.random((size, size)) < rng.uniform(0.06, 0.12)).astype(np.float64)
    return _modulate(rng, base, 2 * dots - 1, (18, 30))


#: The classes, in label order: pairs share coarse structure and differ in fine detail.
CLASSES: dict[str, TextureFn] = {
    "plain": plain,
    "grain": grain,
    "waves": waves,
    "ripples": ripples,
    "checks": checks,
    "fine_checks": fine_checks,
    "rings": rings,
    "fine_rings": fine_rings,
    "spots": spots,
    "speckles": speckles,
}


def render(label: int, seed: int, size: int = 64) -> np.ndarray:
    """Render texture ``seed`` of class ``label`` as a uint8 ``[size, size, 3]`` RGB image."""
    generator = list(CLASSES.values())[label]
    rng = np.random.default_rng([label, seed])
    return np.clip(np.rint(generator(rng, size)), 0, 255).astype(np.uint8)
