"""Paired batches for artifact correction: a compressed crop and the uncompressed crop it came from.

Each sample is read as coefficients twice over the same region: the *original* file (the
uncompressed reference; for the embedded sets, the q90 originals every other study also calls
"original") and its *compressed* version, either a file of the same index in a second sample list
(the cached re-encodes of :func:`cdomain.data.quality.reencoded_samples`, exactly what a quality
sweep evaluates) or the original crop re-encoded in memory at a random quality
(:class:`cdomain.data.quality.RandomQuality`, for training). Both are cut with the same
MCU-aligned crop and flip and laid out as all 64 dequantized frequencies in the split layout
(``y [64, H/8, W/8]``, ``cbcr [128, H/16, W/16]``, 4:2:0), beside the compressed file's
quantization tables in zigzag order (``[3, 64]``). A batch is
``((y, cbcr, tables, y_original, cbcr_original), target)``; the target (label, density map) is
used only to score a task network behind the correction, never by the correction losses.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cdomain.data.dct_transforms import Region, hflip_image, locate_region, to_channels
from cdomain.data.folder import SampleList
from cdomain.data.loader import EpochLoader, SampleDataset, TargetFn, _crop_size, collate_arrays
from cdomain.jpeg.image import DCTImage
from cdomain.jpeg.tables import ZIGZAG


def zigzag_tables(image: DCTImage) -> np.ndarray:
    """float32 ``[3, 64]``: the Y, Cb, Cr quantization tables in zigzag order (grayscale: Y's thrice)."""
    tables = list(image.quant_tables[:3]) + [image.quant_tables[0]] * (3 - min(3, image.num_components))
    return np.stack([np.asarray(t).reshape(64)[ZIGZAG] for t in tables]).astype(np.float32)


class PairDataset(SampleDataset):
    """``((y, cbcr, tables, y_original, cbcr_original), target)`` per index (module docstring)."""

    def __init__(self, originals: SampleList, compressed: SampleList | None, *, transform: Any, crop, augment: bool,
                 seed: int, skip_bad: bool, target: TargetFn | None, strict: bool = True,
                 transcode: str | None = None) -> None:
        if (compressed is None) == (transform is None):
            raise ValueError("give either compressed files or a transform that compresses in memory")
        if compressed is not None and len(compressed) != len(originals):
            raise ValueError(f"{len(compressed)} compressed files for {len(originals)} originals")
        self.samples, self.compressed, self.transform = originals, compressed, transform
        self.crop, self.augment, self.seed, self.skip_bad, self.target = crop, augment, seed, skip_bad, target
        self.strict, self.transcode = strict, transcode
        self.epoch = 0

    def _cut(self, image: DCTImage, index: int) -> tuple[DCTImage, Region, np.random.Generator]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, region = locate_region(image, self.crop, rng if self.augment else None)
        if self.augment and rng.random() < 0.5:
            image = hflip_image(image)
            region = Region(region.top, region.left, region.height, region.width, flipped=True)
        return image, region, rng

    def load(self, index: int):
        original, region, rng = self._cut(self.read(self.samples.paths[index]), index)
        if self.compressed is not None:
            # The network reads the compressed file: only its reading is noted as transcoded, as
            # in a sweep without correction (a re-encode of a transcoded original is a JPEG of its own).
            self.__dict__.pop("note", None)
            compressed, _, _ = self._cut(self.read(self.compressed.paths[index]), index)
        else:
            compressed = self.transform(original, rng)
        y, cbcr = to_channels(compressed, 64, "split")
        y0, cbcr0 = to_channels(original, 64, "split")
        target = self.samples.labels[index] if self.target is None else self.target(index, region)
        return (y, cbcr, zigzag_tables(compressed), y0, cbcr0), target

    def collate(self, items):
        return collate_arrays(items)


class PairLoader(EpochLoader):
    """Seeded batches of :class:`PairDataset` samples (training loaders shuffle, crop at random, flip).

    ``strict`` and ``transcode`` read the files as :class:`cdomain.data.loader.JPEGLoader` does
    (lenient decoding; unsupported formats through transcoded copies, listed in ``transcoded_files``).
    """

    def __init__(self, originals: SampleList, compressed: SampleList | None = None, *, transform: Any = None,
                 batch_size: int = 16, crop: int | None = None, augment: bool = False, seed: int = 0,
                 workers: int = 0, skip_bad: bool = False, target: TargetFn | None = None, strict: bool = True,
                 transcode: str | os.PathLike[str] | None = None) -> None:
        dataset = PairDataset(originals, compressed, transform=transform, crop=_crop_size(crop), augment=augment,
                              seed=seed, skip_bad=skip_bad, target=target, strict=strict,
                              transcode=None if transcode is None else os.fspath(transcode))
        super().__init__(dataset, batch_size=batch_size, shuffle=augment, seed=seed, workers=workers,
                         drop_last=augment and len(originals) >= batch_size)
