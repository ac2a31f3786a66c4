"""Test helpers: JPEG bytes written by Pillow (an independent encoder) and test images."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFile

# Pillow's default encoder buffer is too small for progressive files of noisy images.
ImageFile.MAXBLOCK = 1 << 24


def photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A uint8 RGB test image with smooth structure, edges and texture (not pure noise)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    image = np.stack(
        [
            120 + 90 * np.sin(6 * rows + 3 * cols),
            128 + 80 * np.cos(9 * cols * rows + 1),
            100 + 100 * (rows > 0.5) * (cols < 0.4),
        ],
        axis=-1,
    )
    image += rng.normal(0, 12, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def encode(image: np.ndarray, quality: int = 75, **options) -> bytes:
    """Encode with Pillow (libjpeg-turbo): options such as subsampling=, progressive=."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality, **options)
    return buffer.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images (inf when identical)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def free_port() -> int:
    """A TCP port nothing listens on now, for a torchrun rendezvous (fixed ports collide when two
    test runs share a machine)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def copy_embedded(folder, name: str = "textures-tiny"):
    """A writable copy of the embedded dataset ``name`` as ``folder/<split>/<class>/<file>``
    ImageFolder trees (train and val); returns the dataset it copied."""
    from pathlib import Path

    from cdomain.data.registry import open_dataset

    dataset = open_dataset(name)
    for split in ("train", "val"):
        for path, label in zip(dataset.split(split).paths, dataset.split(split).labels):
            target = Path(folder) / split / dataset.classes[label] / Path(path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(Path(path).read_bytes())
    return dataset
