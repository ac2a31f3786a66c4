"""LatentLoader: batches of ``(y_hat, sigma_hat)`` latents and labels, like DCTLoader's.

The latents come from a latent cache (``cdomain-prepare latents``) or straight from a folder of
learned-codec bitstream files (``cdomain-prepare compress``; pass the ``codec``), which are then
entropy-decoded in the loader's workers (:class:`~cdomain.latents.bitstream_files.BitstreamFiles`).

Augmentation follows the published texture experiments with cResNet on bmshj2018 latents
(docs/references.md, "Learned latents"): latents resized to 32x32, then a random 28x28 crop and a
random horizontal flip for training; for evaluation the same resize and a centre crop. The same
resize, crop and flip apply to ``y_hat`` and ``sigma_hat``. Resizing is bilinear, so resized
``y_hat`` is no longer integral (nearest keeps it so: ``mode="nearest"``).
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from cdomain.data.loader import EpochLoader, SampleDataset
from cdomain.latents.cache import LatentCache
from cdomain.models.spec import InputSpec

#: Published latent augmentation: resize to 32x32, crop 28x28 (random when training).
RESIZE, CROP = 32, 28


def transform_latents(
    y_hat: torch.Tensor,
    sigma_hat: torch.Tensor,
    *,
    resize: int | None = RESIZE,
    crop: int | None = CROP,
    offsets: list[tuple[int, int]] | None = None,
    flips: list[bool] | None = None,
    mode: str = "bilinear",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize, crop and flip a batch ``[B, M, h, w]`` of latents (differentiable).

    ``offsets`` are per-sample ``(top, left)`` crop corners (None: centre crop); ``flips``
    per-sample horizontal flips (None: none).
    """
    if resize is not None:
        kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
        y_hat = F.interpolate(y_hat, size=(resize, resize), mode=mode, **kwargs)
        sigma_hat = F.interpolate(sigma_hat, size=(resize, resize), mode=mode, **kwargs)
    height, width = y_hat.shape[-2:]
    if crop is not None:
        if crop > height or crop > width:
            raise ValueError(f"latent crop {crop} is larger than the latents ({height}x{width}); lower crop or raise resize")
        if offsets is None:
            top, left = (height - crop) // 2, (width - crop) // 2
            y_hat = y_hat[..., top : top + crop, left : left + crop]
            sigma_hat = sigma_hat[..., top : top + crop, left : left + crop]
        else:
            y_hat = torch.stack([y_hat[i, :, t : t + crop, l : l + crop] for i, (t, l) in enumerate(offsets)])
            sigma_hat = torch.stack([sigma_hat[i, :, t : t + crop, l : l + crop] for i, (t, l) in enumerate(offsets)])
    if flips is not None and any(flips):
        mask = torch.tensor(flips, device=y_hat.device).view(-1, 1, 1, 1)
        y_hat = torch.where(mask, y_hat.flip(-1), y_hat)
        sigma_hat = torch.where(mask, sigma_hat.flip(-1), sigma_hat)
    return y_hat.contiguous(), sigma_hat.contiguous()


def random_params(rng: np.random.Generator, size: tuple[int, int], resize: int | None, crop: int | None,
                  flip: bool, count: int = 1) -> tuple[list[tuple[int, int]] | None, list[bool] | None]:
    """Random crop corners and flips for ``count`` samples of latent size ``size``."""
    height, width = (resize, resize) if resize is not None else size
    offsets = None
    if crop is not None:
        offsets = [(int(rng.integers(0, height - crop + 1)), int(rng.integers(0, width - crop + 1))) for _ in range(count)]
    flips = [bool(rng.random() < 0.5) for _ in range(count)] if flip else None
    return offsets, flips


class LatentDataset(SampleDataset):
    """Cached (or bitstream) latents with the loader's augmentation; ``(y_hat, sigma_hat), label`` per sample."""

    def __init__(self, cache, *, resize, crop, augment: bool, flip: bool, seed: int, mode: str) -> None:
        self.cache, self.resize, self.crop = cache, resize, crop
        self.augment, self.flip, self.seed, self.mode = augment, flip, seed, mode
        self.samples = cache  # length and class names come from the cache
        self.epoch = 0

    def describe(self, index: int) -> str:
        if hasattr(self.cache, "describe"):
            return self.cache.describe(index)
        return f"{self.cache.directory} sample {index}"

    def collate(self, items):
        y_hat = torch.stack([item[0][0] for item in items])
        sigma_hat = torch.stack([item[0][1] for item in items])
        labels = torch.tensor([item[1] for item in items], dtype=torch.long)
        return (y_hat, sigma_hat), labels

    def load(self, index: int):
        y_hat, sigma_hat, label = self.cache[index]
        offsets = flips = None
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            offsets, flips = random_params(rng, tuple(y_hat.shape[-2:]), self.resize, self.crop, self.flip)
        y_hat, sigma_hat = transform_latents(y_hat[None], sigma_hat[None], resize=self.resize, crop=self.crop,
                                             offsets=offsets, flips=flips, mode=self.mode)
        return (y_hat[0], sigma_hat[0]), label


class LatentLoader(EpochLoader):
    """Batches ``((y_hat, sigma_hat), labels)`` from a latent cache or from bitstream files.

    Args:
        cache: a cache directory (with ``index.json``) or a :class:`LatentCache`; with ``codec``,
            a folder of bitstream files (``cdomain-prepare compress``; a ``train``/``val`` tree
            needs ``split``), a :class:`~cdomain.data.folder.SampleList` of them, or a
            :class:`~cdomain.latents.bitstream_files.BitstreamFiles`.
        batch_size: samples per batch.
        resize: side the latents are resized to (None keeps their size; they must then share one).
        crop: side of the square crop after resizing (None: no crop).
        augment: random crop and (with ``flip``) random horizontal flip; otherwise centre crop.
            Defaults to True when the cache's split is ``"train"``.
        flip: allow the random horizontal flip when augmenting.
        shuffle: reshuffle every epoch; defaults to ``augment``.
        seed: seed for shuffling and augmentation.
        workers: worker processes (0 loads in the calling process).
        drop_last: drop the last incomplete batch.
        mode: interpolation for the resize (``"bilinear"`` or ``"nearest"``).
        codec: the codec that wrote the bitstream files (checked against every file's header).
        split: with ``codec``, the sub-folder of ``cache`` to read (``"train"``/``"val"``).
        skip_bad: with bitstreams, drop files that cannot be decoded (recorded in ``skipped_files``).

    Like :class:`cdomain.DCTLoader`, each pass is one epoch and advances the epoch counter.
    """

    def __init__(
        self,
        cache: str | os.PathLike[str] | LatentCache,
        *,
        batch_size: int = 64,
        resize: int | None = RESIZE,
        crop: int | None = CROP,
        augment: bool | None = None,
        flip: bool = True,
        shuffle: bool | None = None,
        seed: int = 0,
        workers: int = 0,
        drop_last: bool = False,
        mode: str = "bilinear",
        codec: torch.nn.Module | None = None,
        split: str | None = None,
        skip_bad: bool = False,
    ) -> None:
        from cdomain.latents.bitstream_files import BitstreamFiles

        if crop is not None and resize is not None and crop > resize:
            raise ValueError(f"crop ({crop}) must not exceed resize ({resize})")
        if isinstance(cache, (LatentCache, BitstreamFiles)):
            self.cache = cache
        elif codec is not None:
            self.cache = BitstreamFiles(cache, codec, split=split)
        else:
            self.cache = LatentCache(cache)
        augment = (self.cache.index.get("split") == "train") if augment is None else augment
        dataset = LatentDataset(self.cache, resize=resize, crop=crop, augment=augment, flip=flip, seed=seed, mode=mode)
        dataset.skip_bad = skip_bad
        super().__init__(dataset, batch_size=batch_size, shuffle=augment if shuffle is None else shuffle, seed=seed,
                         workers=workers, drop_last=drop_last)

    @property
    def latent_channels(self) -> int:
        return self.cache.latent_channels

    @property
    def input_spec(self) -> InputSpec:
        """What the batches contain, in the form models declare their expected input."""
        m = self.latent_channels
        return InputSpec("latent", "latent", None, (m, m), (16, 16))

    @property
    def bpp(self) -> dict:
        """Mean real (bitstream) and estimated (likelihood) bits per pixel of the cached images."""
        return {"bpp": self.cache.index.get("bpp"), "likelihood_bpp": self.cache.index.get("likelihood_bpp")}
