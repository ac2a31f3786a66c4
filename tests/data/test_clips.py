"""The embedded moving-texture clip set: known motion, labels, deterministic atomic generation."""

from __future__ import annotations

import numpy as np
import pytest

from cdomain.data.clips import CLIPS, clip_root, load_clips, render_clip
from cdomain.data.registry import open_clips, open_dataset
from cdomain.data.textures import CLASSES
from cdomain.errors import DataError


@pytest.mark.parametrize("label, seed", [(2, 0), (5, 1), (9, 7)])
def test_each_frame_is_the_previous_one_moved_by_the_clip_step(label, seed):
    clip, (dy, dx) = render_clip(label, seed, size=32, frames=5, max_step=2)
    assert clip.shape == (5, 32, 32, 3) and clip.dtype == np.uint8 and (dy, dx) != (0, 0)
    for t in range(4):
        # content at (y, x) in frame t + 1 was at (y + dy, x + dx) in frame t
        ys, xs = slice(max(0, -dy), 32 - max(0, dy)), slice(max(0, -dx), 32 - max(0, dx))
        moved = clip[t, max(0, dy):32 + min(0, dy), max(0, dx):32 + min(0, dx)]
        assert np.array_equal(clip[t + 1, ys, xs], moved)
    again, step = render_clip(label, seed, size=32, frames=5, max_step=2)
    assert np.array_equal(clip, again) and step == (dy, dx)


def test_clip_set_loads_with_labels_and_motion():
    clips = open_clips("clips-tiny")
    spec = CLIPS["clips-tiny"]
    assert clips.frames.shape == (len(CLASSES) * spec.clips_per_class, spec.frames, spec.size, spec.size, 3)
    # labelled as the textures folders are, so a classifier trained there reads the clips
    assert clips.classes == open_dataset("textures-tiny").classes
    assert sorted(set(clips.labels.tolist())) == list(range(len(CLASSES)))
    assert (np.abs(clips.motion) <= spec.max_step).all() and clips.motion.any(axis=1).all()
    texture = list(CLASSES).index(clips.classes[clips.labels[0]])
    first, _ = render_clip(texture, 1 << 21, spec.size, spec.frames, spec.max_step)
    assert np.array_equal(clips.frames[0], first)
    root = clip_root("clips-tiny")
    assert not [p for p in root.parent.iterdir() if p.name.startswith(f".{root.name}.")]
    with pytest.raises(DataError, match="clips, clips-tiny"):
        open_clips("textures")
    with pytest.raises(DataError, match="--codec h264"):
        open_dataset("clips-tiny")


def test_corrupt_clip_file_is_one_clear_error():
    load_clips("clips-tiny")
    path = clip_root("clips-tiny") / "clips.safetensors"
    saved = path.read_bytes()
    try:
        path.write_bytes(saved[:100])
        with pytest.raises(DataError, match="clips.safetensors"):
            load_clips("clips-tiny")
    finally:
        path.write_bytes(saved)
