"""The embedded moving-texture clip set: short videos for H.264 sweeps, generated offline.

Each clip shows one texture of the classification set (:mod:`cdomain.data.textures`, the same
ten classes, labelled in the sorted order of the ``textures`` folders) through a window that
moves by a fixed whole-pixel step per frame, so frame ``t`` is the texture shifted by
``t * (dy, dx)``: the motion an inter-frame codec predicts. Every frame carries its clip's class label, so a classifier trained on ``textures``
can be evaluated on decoded frames. The texture is drawn on a canvas just large enough for the
whole path (size + 2 x max step x (frames - 1)), so the window never leaves it.

Frames are kept uncompressed (uint8 RGB), generated on first use into::

    $CDOMAIN_DATA/clips-v1/clips.safetensors

with tensors ``frames`` ``[N, T, H, W, 3]`` uint8, ``labels`` ``[N]`` int64 and ``motion``
``[N, 2]`` int64 (``dy, dx`` pixels per frame), and the class names in its metadata. The file
is written in a temporary folder renamed into place (:func:`cdomain.data.embedded.build_once`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cdomain.data.embedded import build_once, data_dir
from cdomain.data.textures import CLASSES, render
from cdomain.errors import DataError

__all__ = ["CLIPS", "ClipSet", "ClipSpec", "clip_root", "load_clips", "render_clip"]

CLIPS_FILE = "clips.safetensors"
#: Class names in label order: sorted, as the ``textures`` ImageFolder tree orders them, so the
#: labels are those of a classifier trained there.
CLIP_CLASSES = tuple(sorted(CLASSES))


@dataclass(frozen=True)
class ClipSpec:
    """How a clip set is generated: clips per class, frames per clip, frame size, motion."""

    version: int
    clips_per_class: int
    frames: int
    size: int  # square frames of this many pixels per side (even, as 4:2:0 video needs)
    max_step: int  # |dy|, |dx| per frame are uniform in 0..max_step (not both 0)


CLIPS: dict[str, ClipSpec] = {
    "clips": ClipSpec(version=1, clips_per_class=10, frames=8, size=64, max_step=2),
    "clips-tiny": ClipSpec(version=1, clips_per_class=1, frames=4, size=32, max_step=2),
}


@dataclass(frozen=True)
class ClipSet:
    """Loaded clips: frames ``[N, T, H, W, 3]`` uint8, labels ``[N]``, motion ``[N, 2]`` (dy, dx)."""

    name: str
    frames: np.ndarray
    labels: np.ndarray
    motion: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.frames)


def render_clip(label: int, seed: int, size: int = 64, frames: int = 8,
                max_step: int = 2) -> tuple[np.ndarray, tuple[int, int]]:
    """Clip ``seed`` of texture ``label`` (an index of :data:`cdomain.data.textures.CLASSES`):
    uint8 ``[frames, size, size, 3]`` and its step ``(dy, dx)``.

    Frame ``t`` is the window of the texture canvas at offset ``start + t * (dy, dx)``;
    deterministic in all arguments.
    """
    rng = np.random.default_rng([label, seed, size, frames, max_step, 264])
    while True:
        step = rng.integers(-max_step, max_step + 1, size=2)
        if step.any() or max_step == 0:
            break
    travel = max_step * (frames - 1)
    canvas = render(label, seed, size + 2 * travel)
    start = np.full(2, travel) - step * (frames - 1) // 2
    clip = np.stack([canvas[y:y + size, x:x + size] for y, x in (start + t * step for t in range(frames))])
    return np.ascontiguousarray(clip), (int(step[0]), int(step[1]))


def clip_root(name: str = "clips") -> Path:
    """Where clip set ``name`` lives (or will live once generated)."""
    if name not in CLIPS:
        raise KeyError(f"unknown clip set {name!r}; known: {', '.join(CLIPS)}")
    return data_dir() / f"{name}-v{CLIPS[name].version}"


def _write(root: Path, spec: ClipSpec, name: str) -> None:
    from safetensors.numpy import save_file

    frames, labels, motion = [], [], []
    for label, class_name in enumerate(CLIP_CLASSES):
        for index in range(spec.clips_per_class):
            clip, step = render_clip(list(CLASSES).index(class_name), (1 << 21) + index, spec.size, spec.frames,
                                     spec.max_step)
            frames.append(clip)
            labels.append(label)
            motion.append(step)
    tensors = {"frames": np.stack(frames), "labels": np.asarray(labels, dtype=np.int64),
               "motion": np.asarray(motion, dtype=np.int64)}
    save_file(tensors, str(root / CLIPS_FILE), metadata={"name": name, "classes": json.dumps(list(CLIP_CLASSES))})


def load_clips(name: str = "clips") -> ClipSet:
    """Clip set ``name`` (``"clips"`` or ``"clips-tiny"``), generated on first use."""
    from safetensors import SafetensorError, safe_open

    spec = CLIPS[name]
    root = build_once(clip_root(name), lambda staging: _write(staging, spec, name))
    path = root / CLIPS_FILE
    try:
        with safe_open(str(path), framework="numpy") as handle:
            classes = tuple(json.loads(handle.metadata()["classes"]))
            frames, labels, motion = (handle.get_tensor(key) for key in ("frames", "labels", "motion"))
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as error:
        raise DataError(f"{path}: unreadable clip file ({error})") from None
    if frames.ndim != 5 or frames.dtype != np.uint8 or len(labels) != len(frames) or motion.shape != (len(frames), 2):
        raise DataError(f"{path}: clip tensors have inconsistent shapes")
    return ClipSet(name, frames, labels, motion, classes)
