"""RGB images in [0, 1] from JPEG sources, for the codecs (which work on pixels)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from cdomain.data.loader import EpochLoader, SampleDataset
from cdomain.data.folder import SampleList
from cdomain.jpeg.reader import read_coefficients


def load_rgb(path: str) -> torch.Tensor:
    """Decode a JPEG file to a float tensor ``[3, H, W]`` in [0, 1] (grayscale repeated)."""
    pixels = read_coefficients(path).to_rgb()
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).float().div_(255.0)


class RandomCrops(Dataset):
    """Random ``crop`` x ``crop`` pixel crops with random horizontal flips, for codec training.

    Images smaller than the crop are zero-padded (centred) to it first. Randomness comes from
    ``(seed, epoch, index)`` so that it does not depend on the number of workers.
    """

    def __init__(self, samples: SampleList, crop: int, seed: int = 0) -> None:
        self.samples, self.crop, self.seed, self.epoch = samples, int(crop), int(seed), 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = load_rgb(self.samples.paths[index])
        rng = np.random.default_rng([self.seed, self.epoch, index])
        _, height, width = image.shape
        size = self.crop
        if height < size or width < size:
            pad_h, pad_w = max(0, size - height), max(0, size - width)
            image = torch.nn.functional.pad(image, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
            _, height, width = image.shape
        top = int(rng.integers(0, height - size + 1))
        left = int(rng.integers(0, width - size + 1))
        image = image[:, top : top + size, left : left + size]
        if rng.random() < 0.5:
            image = image.flip(-1)
        return image.contiguous()


class LabelledImages(SampleDataset):
    """Whole images (or ``crop`` x ``crop`` crops: random when ``augment``, else centred) and labels."""

    def __init__(self, samples: SampleList, crop: int | None = None, augment: bool = False, seed: int = 0) -> None:
        self.samples, self.crop, self.augment, self.seed, self.epoch = samples, crop, augment, int(seed), 0

    def __len__(self) -> int:
        return len(self.samples)

    def collate(self, items):
        images, labels = torch.utils.data.default_collate(list(items))
        return images, labels.long()

    def load(self, index: int) -> tuple[torch.Tensor, int]:
        image = load_rgb(self.samples.paths[index])
        if self.crop is not None:
            size = self.crop
            _, height, width = image.shape
            if height < size or width < size:
                pad_h, pad_w = max(0, size - height), max(0, size - width)
                image = torch.nn.functional.pad(image, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
                _, height, width = image.shape
            if self.augment:
                rng = np.random.default_rng([self.seed, self.epoch, index])
                top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
            else:
                top, left = (height - size) // 2, (width - size) // 2
            image = image[:, top : top + size, left : left + size].contiguous()
        return image, self.samples.labels[index]


class ImageLoader(EpochLoader):
    """Batches ``(images [B, 3, H, W] in [0, 1], labels)`` from JPEG files, for joint fine-tuning.

    ``crop`` (pixels) cuts a common size (random crops when ``augment``); without it the images
    of a batch must share one size. Flips are left to the latent-domain augmentation.
    """

    def __init__(self, source, *, split: str | None = None, batch_size: int = 64, crop: int | None = None,
                 augment: bool | None = None, shuffle: bool | None = None, seed: int = 0, workers: int = 0,
                 drop_last: bool = False, skip_bad: bool = False) -> None:
        from cdomain.data.folder import resolve_source

        self.samples = resolve_source(source, split)
        augment = (split in (None, "train")) if augment is None else augment
        self.augment = augment
        dataset = LabelledImages(self.samples, crop, augment, seed)
        dataset.skip_bad = skip_bad
        super().__init__(dataset, batch_size=batch_size, shuffle=augment if shuffle is None else shuffle, seed=seed,
                         workers=workers, drop_last=drop_last)
