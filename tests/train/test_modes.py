"""Phase plans of the training modes, and the quality-controlled data they train on."""

from __future__ import annotations

import numpy as np
import pytest

from cdomain import read_coefficients
from cdomain.data.embedded import embedded_dataset
from cdomain.data.folder import image_folder
from cdomain.data.quality import RandomQuality, reencoded_samples
from cdomain.train.modes import DEFAULT_CURRICULUM, curriculum_prefix, plan_phases


def test_curriculum_prefix_follows_the_study():
    assert DEFAULT_CURRICULUM == (75, 60, 40, 30, 25, 20, 15, 10, 5, 1)
    assert curriculum_prefix(DEFAULT_CURRICULUM, 5) == [75, 60, 40, 30, 25, 20, 15, 10, 5]
    assert curriculum_prefix((75, 40, 25, 15, 5), 15) == [75, 40, 25, 15]
    with pytest.raises(ValueError, match="not in the curriculum"):
        curriculum_prefix(DEFAULT_CURRICULUM, 50)
    with pytest.raises(ValueError, match="decreasing"):
        curriculum_prefix((40, 75), 40)


def test_plans():
    assert [(p.train_quality, p.val_quality) for p in plan_phases("standard", epochs=3, quality=30)] == [(30, 30)]
    cpt = plan_phases("cpt", epochs=2, target_quality=25)
    assert [p.train_quality for p in cpt] == [75, 60, 40, 30, 25] and all(p.epochs == 2 for p in cpt)
    assert [(p.train_quality, p.val_quality) for p in plan_phases("npt", epochs=1, target_quality=5)] == [(5, 5)]
    assert [(p.train_quality, p.val_quality) for p in plan_phases("jpeg-aug", epochs=1, quality=20)] == [(None, 20)]
    with pytest.raises(ValueError, match="target-quality"):
        plan_phases("cpt", epochs=1)


@pytest.mark.parametrize("method", ["pixel", "dct"])
def test_reencoded_samples_are_cached_and_at_quality(method, tmp_path):
    samples = image_folder(embedded_dataset("textures-tiny") / "val")
    low = reencoded_samples(samples, 20, method, cache_dir=tmp_path)
    assert low.labels == samples.labels and len(low) == len(samples)
    assert {read_coefficients(path).quality() for path in low.paths[:5]} == {20}
    stamps = [__import__("os").stat(path).st_mtime_ns for path in low.paths]
    again = reencoded_samples(samples, 20, method, cache_dir=tmp_path)
    assert again.paths == low.paths
    assert stamps == [__import__("os").stat(path).st_mtime_ns for path in again.paths]  # reused, not rewritten


def test_reencoding_resumes_after_an_interruption(tmp_path, monkeypatch):
    samples = image_folder(embedded_dataset("textures-tiny") / "val")
    from cdomain.data import quality as quality_module

    calls = {"count": 0}
    original = quality_module.write_jpeg

    def failing(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 7:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(quality_module, "write_jpeg", failing)
    with pytest.raises(KeyboardInterrupt):
        reencoded_samples(samples, 30, "pixel", cache_dir=tmp_path)
    written = list(tmp_path.rglob("*.jpg"))
    assert len(written) == 6 and not list(tmp_path.rglob(".*"))  # only complete files
    monkeypatch.setattr(quality_module, "write_jpeg", original)
    complete = reencoded_samples(samples, 30, "pixel", cache_dir=tmp_path)
    assert all(read_coefficients(path).quality() == 30 for path in complete.paths)


def test_random_quality_draws_in_range_and_is_seeded():
    image = read_coefficients(image_folder(embedded_dataset("textures-tiny") / "val").paths[0])
    augment = RandomQuality(10, 40)
    qualities = {augment(image, np.random.default_rng(seed)).quality() for seed in range(12)}
    assert qualities <= set(range(10, 41)) and len(qualities) > 3
    first = augment(image, np.random.default_rng(3))
    again = augment(image, np.random.default_rng(3))
    assert all(np.array_equal(a, b) for a, b in zip(first.coefficients, again.coefficients))
    with pytest.raises(ValueError):
        RandomQuality(50, 40)
