"""The embedded texture dataset: deterministic, labelled, real JPEG files, written atomically."""

from __future__ import annotations

import numpy as np

from cdomain import read_coefficients
from cdomain.data.embedded import EMBEDDED, embedded_dataset
from cdomain.data.textures import CLASSES, render


def test_render_is_deterministic_and_varied():
    assert np.array_equal(render(3, 5), render(3, 5))
    assert not np.array_equal(render(3, 5), render(3, 6))
    assert render(0, 0).shape == (64, 64, 3) and render(0, 0).dtype == np.uint8


def test_fine_detail_classes_have_more_high_frequency_energy():
    """Each pair differs in high frequencies: the second member has more of them."""

    def high_frequency_energy(image: np.ndarray) -> float:
        gray = image.astype(np.float64).mean(axis=2)
        spectrum = np.abs(np.fft.fft2(gray - gray.mean())) ** 2
        freq = np.hypot(*np.meshgrid(np.fft.fftfreq(64), np.fft.fftfreq(64), indexing="ij"))
        return float(spectrum[freq > 0.2].sum() / spectrum.sum())

    for coarse in range(0, 10, 2):
        plain = np.mean([high_frequency_energy(render(coarse, s)) for s in range(8)])
        fine = np.mean([high_frequency_energy(render(coarse + 1, s)) for s in range(8)])
        assert fine > 2 * plain, list(CLASSES)[coarse]


def test_embedded_dataset_is_generated_once_as_jpeg_q90(private_data_dir):
    root = embedded_dataset("textures-tiny")
    spec = EMBEDDED["textures-tiny"]
    files = sorted(root.glob("train/*/*.jpg"))
    assert len(files) == spec.train_per_class * len(CLASSES)
    assert len(list(root.glob("val/*/*.jpg"))) == spec.val_per_class * len(CLASSES)
    image = read_coefficients(files[0])
    assert image.quality() == 90 and image.subsampling == "4:2:0"
    assert (image.height, image.width) == (spec.size, spec.size)
    stamp = files[0].stat().st_mtime_ns
    assert embedded_dataset("textures-tiny") == root and files[0].stat().st_mtime_ns == stamp
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no staging left
