"""DCTLoader (and RGBLoader): batches of network inputs read from JPEG files.

Each sample is read only as far as its quantized coefficients, optionally transformed in the
DCT domain (a quality change, for instance), cropped and flipped in the DCT domain, then either
dequantized with frequency band selection into channels (:class:`DCTLoader`, see
:mod:`cdomain.data.dct_transforms`) or decoded to pixels (:class:`RGBLoader`, the baseline that
sees exactly the same crops). With ``device=`` DCTLoader takes the batch path of
:mod:`cdomain.data.batch_path`: workers only pack int16 coefficients and one kernel call per
batch on the model's device makes the inputs. Seeded epochs, sharding, workers and bad-file
handling come from :class:`EpochLoader`, the one loader base (LatentLoader and ImageLoader in
:mod:`cdomain.latents` build on it too); randomness is derived from ``(seed, epoch, index)`` so
results do not depend on the number of workers.

EpochLoader: seeded epochs (the shuffle order and each sample's randomness come from
``(seed, epoch, index)``), sharding for distributed training, ``__len__``, worker processes,
and what happens to a sample that fails: with ``skip_bad`` it is dropped from its batch and
recorded in ``skipped_files`` (path and cause); otherwise the error is carried out of the worker
as it is and re-raised in the calling process with its own type and message (cdomain's errors
pickle intact), instead of PyTorch's wrapped ``RuntimeError`` with a worker traceback. A loader
supplies a :class:`SampleDataset`: ``load(index)`` returns ``(inputs, target)``, and ``collate``
stacks good samples.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from cdomain.data.dct_transforms import (
    CROP_MULTIPLE,
    LAYOUTS,
    SMALL_POLICIES,
    ChannelStats,
    Region,
    SampleRandom,
    crop_blocks,
    hflip_image,
    locate_region,
    random_scaled_region,
    scale_factors,
    plan_region,
    to_channels,
)
from cdomain.data.folder import DataSource, SampleList, resolve_source
from cdomain.jpeg.errors import JPEGError, UnsupportedFormat
from cdomain.jpeg.image import DCTImage
from cdomain.jpeg.native import RowsNeeded
from cdomain.jpeg.reader import read_coefficients
from cdomain.models.spec import InputSpec

@dataclass(frozen=True)
class BadSample:
    """A sample that could not be loaded: which file, and why."""

    path: str
    cause: str


@dataclass(frozen=True)
class TranscodedSample:
    """A sample read from a transcoded copy (``transcode``): which file, and why."""

    path: str
    cause: str


@dataclass(frozen=True)
class Noted:
    """A loaded sample with a note for the calling process (a :class:`TranscodedSample`)."""

    item: Any
    note: TranscodedSample


@dataclass(frozen=True)
class FailedSample:
    """A sample whose error must reach the calling process (``skip_bad`` off)."""

    error: BaseException


class SampleDataset(Dataset):
    """Indexable samples with a per-epoch random state; subclasses implement :meth:`load`."""

    epoch: int = 0
    skip_bad: bool = False
    samples: Any = None  # a SampleList, for datasets read from image files
    # How JPEG files are read (:meth:`read`): lenient without ``strict``; unsupported formats
    # through the copies in the ``transcode`` cache folder when one is set.
    strict: bool = True
    transcode: str | None = None
    backend: str = "auto"

    def load(self, index: int) -> tuple[Any, Any]:
        raise NotImplementedError

    def read(self, path: str, rows: RowsNeeded | None = None) -> DCTImage:
        """Read ``path`` (``strict`` or lenient); a file refused as an unsupported format is read
        from its transcoded copy in the ``transcode`` cache folder when one is set, and noted.
        Every dataset of JPEG files reads through here, so ``--lenient`` and ``--transcode`` mean
        the same for all of them. ``rows``: decode only the top of the file when it allows it
        (see :func:`cdomain.jpeg.reader.read_coefficients`)."""
        try:
            return read_coefficients(path, backend=self.backend, strict=self.strict, rows=rows)
        except UnsupportedFormat as error:
            if self.transcode is None:
                raise
            from cdomain.jpeg.transcode import transcoded_path

            image = read_coefficients(transcoded_path(path, self.transcode))
            self.note = TranscodedSample(path, error.cause)
            return image

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names the labels index (empty for unlabelled data)."""
        return self.samples.classes

    def describe(self, index: int) -> str:
        """The file behind sample ``index``, for error reports."""
        return self.samples.paths[index]

    def collate(self, items: Sequence[tuple[Any, Any]]) -> tuple[Any, Any]:
        return torch.utils.data.default_collate(list(items))

    def __getitem__(self, key):
        if isinstance(key, tuple):  # (epoch, index) from EpochSampler: workers outlive epochs
            self.epoch, index = key
        else:
            index = key
        self.__dict__.pop("note", None)
        try:
            item = self.load(index)
            note = self.__dict__.pop("note", None)  # set by load() for a transcoded file
            return item if note is None else Noted(item, note)
        except (ValueError, OSError) as error:  # cdomain's errors are ValueErrors; OSError: unreadable file
            if self.skip_bad:
                return BadSample(self.describe(index), str(error))
            return FailedSample(error)


def guarded_collate(dataset: SampleDataset):
    """A collate function that sets bad and failed samples apart before ``dataset.collate``."""

    def collate(batch: list) -> tuple[Any, Any, list[BadSample], list[FailedSample]]:
        notes = [item.note for item in batch if isinstance(item, Noted)]  # travel with the bad ones
        batch = [item.item if isinstance(item, Noted) else item for item in batch]
        good = [item for item in batch if not isinstance(item, (BadSample, FailedSample))]
        bad = [item for item in batch if isinstance(item, BadSample)] + notes
        failed = [item for item in batch if isinstance(item, FailedSample)]
        if failed or not good:
            return None, None, bad, failed
        inputs, targets = dataset.collate(good)
        if isinstance(targets, torch.Tensor) and targets.numel() <= BY_VALUE and torch.utils.data.get_worker_info():
            targets = targets.numpy()  # pickled with the batch: no shared-memory file to hand over
        return inputs, targets, bad, failed

    return collate


#: Targets of at most this many values (class labels) leave a worker as a NumPy array, pickled
#: by value. A tensor would travel as a new shared-memory file whose descriptor the main process
#: fetches over an authenticated connection: about as much main-process time per batch as the
#: batch kernel, for 64 labels.
BY_VALUE = 4096


class EpochSampler(torch.utils.data.Sampler):
    """This rank's sample order for the loader's current epoch, as ``(epoch, index)`` pairs.

    The epoch travels with every index, so worker processes can live across epochs
    (``persistent_workers``) and still draw each sample's randomness from ``(seed, epoch, index)``.
    """

    def __init__(self, loader: "EpochLoader") -> None:
        self.loader = loader

    def __iter__(self) -> Iterator[tuple[int, int]]:
        loader = self.loader
        epoch, count = loader.dataset.epoch, len(loader.dataset)
        if loader.world_size > 1:
            sampler = DistributedSampler(loader.dataset, num_replicas=loader.world_size, rank=loader.rank,
                                         shuffle=loader.shuffle, seed=loader.seed)
            sampler.set_epoch(epoch)
            order = list(sampler)
        elif loader.shuffle:
            generator = torch.Generator()
            generator.manual_seed(loader.seed * 1_000_003 + epoch)
            order = torch.randperm(count, generator=generator).tolist()
        else:
            order = range(count)
        return ((epoch, index) for index in order)

    def __len__(self) -> int:
        return -(-len(self.loader.dataset) // self.loader.world_size)


class EpochLoader:
    """Seeded, shardable batches of ``(inputs, targets)`` over a :class:`SampleDataset`.

    Each pass over the loader is one epoch and advances the epoch counter; :meth:`set_epoch`
    sets it explicitly (a resumed run continues with the epoch it stopped at). Worker processes
    start with the first pass and are kept for the next ones; :meth:`reset_workers` ends them
    (needed only after changing the dataset's attributes between passes).
    """

    def __init__(self, dataset: SampleDataset, *, batch_size: int, shuffle: bool, seed: int = 0, workers: int = 0,
                 drop_last: bool = False) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be an int >= 0, got {workers!r}")
        self.dataset = dataset
        self.batch_size, self.shuffle, self.seed, self.workers = batch_size, shuffle, int(seed), workers
        self.drop_last = drop_last
        self.skipped_files: list[BadSample] = []
        self.transcoded_files: list[TranscodedSample] = []
        self.rank, self.world_size = 0, 1
        self.pin_memory = False  # page-locked batches, for a fast copy to a GPU
        self._loader: tuple[tuple, DataLoader] | None = None

    def shard(self, rank: int, world_size: int) -> None:
        """Read only this process's share of every epoch (distributed training)."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
        self.rank, self.world_size = rank, world_size

    def reset_workers(self) -> None:
        """End the worker processes; the next pass starts new ones from the current dataset."""
        self._loader = None

    @property
    def classes(self) -> tuple[str, ...]:
        return self.dataset.classes

    @property
    def num_classes(self) -> int:
        return len(self.dataset.classes)

    @property
    def epoch(self) -> int:
        return self.dataset.epoch

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch used for the next pass (shuffle order and augmentation)."""
        self.dataset.epoch = int(epoch)

    @property
    def skipped(self) -> int:
        """How many bad files were skipped so far (with ``skip_bad=True``)."""
        return len(self.skipped_files)

    def __len__(self) -> int:
        count = -(-len(self.dataset) // self.world_size)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def _torch_loader(self) -> DataLoader:
        """The DataLoader for the current settings, kept across epochs with its workers."""
        key = (self.batch_size, self.drop_last, self.workers, self.rank, self.world_size, self.shuffle, self.seed,
               self.pin_memory)
        if self._loader is None or self._loader[0] != key:
            self._loader = None  # the old workers go before the new ones start
            self._prepare_workers()
            loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=EpochSampler(self),
                                num_workers=self.workers, collate_fn=guarded_collate(self.dataset),
                                drop_last=self.drop_last, persistent_workers=self.workers > 0,
                                pin_memory=self.pin_memory)
            self._loader = (key, loader)
        return self._loader[1]

    def _prepare_workers(self) -> None:
        """Called before new worker processes start (they take the dataset as it is then)."""

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        try:
            for inputs, targets, bad, failed in self._torch_loader():
                if failed:
                    raise failed[0].error
                self.skipped_files.extend(item for item in bad if isinstance(item, BadSample))
                self.transcoded_files.extend(item for item in bad if isinstance(item, TranscodedSample))
                if inputs is not None:
                    yield inputs, torch.from_numpy(targets) if isinstance(targets, np.ndarray) else targets
        finally:
            self.dataset.epoch += 1


#: A per-sample DCT-domain transform applied right after reading (e.g. a random quality change).
SampleTransform = Callable[[DCTImage, np.random.Generator], DCTImage]
#: The training target of sample ``index`` cut to ``region``; the default is the class label.
TargetFn = Callable[[int, Region], Any]

Inputs = torch.Tensor | tuple[torch.Tensor, torch.Tensor]

#: A crop planned while reading: the luma-block box ``(top, left, rows, cols)`` and its region.
CropPlan = tuple[tuple[int, int, int, int], Region]


class JPEGDataset(SampleDataset):
    """JPEG samples: ``(inputs, target)`` per index (see :class:`EpochLoader`)."""

    def __init__(
        self,
        samples: SampleList,
        *,
        input: str,
        fbs: int,
        layout: str,
        crop: tuple[int, int] | None,
        augment: bool,
        flip: bool,
        seed: int,
        stats: ChannelStats | None,
        small: str,
        skip_bad: bool,
        backend: str,
        transform: SampleTransform | None = None,
        target: TargetFn | None = None,
        scale: tuple[int, int] | None = None,
        strict: bool = True,
        transcode: str | None = None,
    ) -> None:
        self.scale = scale
        self.samples, self.input = samples, input
        self.strict, self.transcode = strict, transcode
        self.transform, self.target = transform, target
        self.fbs, self.layout, self.crop = fbs, layout, crop
        self.augment, self.flip, self.seed = augment, flip, seed
        self.stats, self.small, self.skip_bad, self.backend = stats, small, skip_bad, backend
        self.epoch = 0
        self.packed = False  # the batch path: workers hand over packed int16 coefficients
        self.slots = None  # shared-memory slots for packed batches (cdomain.data.batch_slots)
        # Files this process has decoded whole and found good: later reads stop below the crop.
        self.checked = np.zeros(len(samples), dtype=bool)

    @property
    def rescales(self) -> bool:
        """Whether samples are cut and downscaled RandomResizedCrop-like (``scale`` when augmenting)."""
        return self.augment and self.scale is not None

    def load(self, index: int):
        inputs, region = self.load_packed(index) if self.packed else self.load_region(index)
        target = self.samples.labels[index] if self.target is None else self.target(index, region)
        return inputs, target

    def collate(self, items):
        if self.packed:
            from cdomain.data.batch_path import collate_packed

            batch = collate_packed([item for item, _ in items], self.layout)
            if self.slots is not None:
                batch = self.slots.put(batch)
            return batch, collate_targets([t for _, t in items])
        return collate_arrays(items)

    def load_packed(self, index: int):
        """Sample ``index`` for the batch path: read, crop, flip and pack (int16, ``fbs``
        frequencies), drawing the same randomness as :meth:`load_region`; a random-quality
        requantization is left to the batch (its target tables travel with the sample)."""
        from cdomain.data.batch_path import pack_sample

        image, plan, rng = self._read_planned(index)
        targets = None
        if self.transform is not None:
            # A requantization moves to the batch unless the sample is then downscaled (the
            # per-sample path requantizes before downscaling, and so must this one).
            batch_tables = None if self.rescales else getattr(self.transform, "batch_tables", None)
            targets = batch_tables(image, rng) if batch_tables is not None else None
            if targets is None:
                image = self.transform(image, rng)
        if self.rescales:  # RandomResizedCrop-like: cut and downscale in the worker, pack all of it
            image, region = random_scaled_region(image, self.crop, rng, self.scale, self.small)
            image, box, _ = plan_region(image, self.crop, None, self.small)
        elif plan is None:
            image, box, region = plan_region(image, self.crop, rng if self.augment else None, self.small)
        else:
            box, region = plan
        flipped = self.augment and self.flip and rng.random() < 0.5
        if flipped:
            region = Region(region.top, region.left, region.height, region.width, flipped=True)
        return pack_sample(image, self.fbs, self.layout, box, flipped, targets), region

    def _read_planned(self, index: int) -> tuple[DCTImage, CropPlan | None, SampleRandom]:
        """Read sample ``index``; also its crop ``(box, region)`` where that was planned while
        reading (else None), and its random generator, positioned after the crop's draws if so.

        A plain crop (no transform, no rescaling) of a file this process has already decoded
        whole, strictly and without fault, is planned from the file's header, and decoding
        stops at the crop's last block row: the crop and the coefficients it holds are the
        same as after a whole decode, and a corrupt file is still refused the first time it is
        read (decoding the part below the crop is about a fifth of an ImageNet-like file's).
        """
        path = self.samples.paths[index]
        rng = SampleRandom(self.seed, self.epoch, index)
        plain = self.crop is not None and self.transform is None and not self.rescales
        if not (plain and self.checked[index]):
            image = self.read(path)
            self.checked[index] = self.strict and self.backend != "jpeglib"
            return image, None, rng
        plan = None

        def rows(shell: DCTImage) -> int | None:
            nonlocal plan
            padded, box, region = plan_region(shell, self.crop, rng if self.augment else None, self.small)
            if padded is not shell:  # smaller than the crop: the padding needs every block
                return None
            plan = box, region
            return box[0] + box[2]

        image = self.read(path, rows)
        if plan is None:  # not planned (a progressive file, say), or the draws were for nothing
            rng = SampleRandom(self.seed, self.epoch, index)
        return image, plan, rng

    def load_region(self, index: int, stats: bool = True) -> tuple[np.ndarray | tuple[np.ndarray, np.ndarray], Region]:
        """Read, transform, crop, flip and lay out sample ``index``; also say which region.

        ``stats=False`` skips normalisation (used to compute the statistics).
        """
        image, plan, rng = self._read_planned(index)
        if self.transform is not None:
            image = self.transform(image, rng)
        if self.rescales:  # RandomResizedCrop-like: downscale by 1, 2 or 4
            image, region = random_scaled_region(image, self.crop, rng, self.scale, self.small)
        elif plan is None:
            image, region = locate_region(image, self.crop, rng if self.augment else None, self.small)
        else:
            image, region = crop_blocks(image, *plan[0]), plan[1]
        if self.augment and self.flip and rng.random() < 0.5:
            image = hflip_image(image)
            region = Region(region.top, region.left, region.height, region.width, flipped=True)
        channel_stats = self.stats if stats else None
        if self.input == "rgb":
            return to_rgb_channels(image, channel_stats), region
        return to_channels(image, self.fbs, self.layout, channel_stats), region


def to_rgb_channels(image: DCTImage, stats: ChannelStats | None = None) -> np.ndarray:
    """Decode to float32 ``[3, H, W]`` pixel values (0..255; grayscale repeated), normalised by ``stats``."""
    return pixels_to_channels(image.to_rgb(), stats)


def pixels_to_channels(pixels: np.ndarray, stats: ChannelStats | None = None) -> np.ndarray:
    """uint8 ``[H, W, 3]`` (or ``[H, W]``) pixels as the float32 ``[3, H, W]`` input of an RGB
    network, normalised by ``stats``: what :class:`RGBLoader` feeds, also for decoded video frames."""
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    out = np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)
    if stats is not None:
        out -= stats.mean[:, None, None]
        out /= stats.std[:, None, None]
    return out


def collate_targets(targets: Sequence[Any]) -> torch.Tensor:
    """Labels as a long tensor, or array targets stacked."""
    if isinstance(targets[0], np.ndarray):
        return torch.from_numpy(np.stack(targets))
    return torch.as_tensor(targets, dtype=torch.long)


def collate_arrays(good: Sequence[tuple[Any, Any]]) -> tuple[Any, torch.Tensor]:
    """Stack per-sample arrays (or tuples of arrays) and targets (labels or arrays) into tensors."""
    labels = collate_targets([target for _, target in good])
    first = good[0][0]
    try:
        if isinstance(first, tuple):
            inputs = tuple(torch.from_numpy(np.stack([item[0][k] for item in good])) for k in range(len(first)))
        else:
            inputs = torch.from_numpy(np.stack([item[0] for item in good]))
    except ValueError as error:
        shapes = sorted({str(item[0].shape if not isinstance(item[0], tuple) else item[0][0].shape) for item in good})
        raise ValueError(
            f"samples in a batch have different shapes ({', '.join(shapes)}); pass crop= to cut a common size"
        ) from error
    return inputs, labels


class JPEGLoader(EpochLoader):
    """Batches of inputs and targets from JPEG files; :class:`DCTLoader` and :class:`RGBLoader`
    choose what the inputs are.

    Args:
        source: an ImageFolder directory (one sub-folder of JPEGs per class), an embedded
            dataset name such as ``"textures"``, or a list of paths / ``(path, label)`` pairs.
        split: for embedded datasets and folders with ``train``/``val`` sub-folders.
        batch_size: samples per batch.
        fbs: frequency band selection: keep the ``fbs`` lowest zigzag frequencies (1..64).
        layout: ``"merged"`` gives ``[B, 3n, H/8, W/8]``; ``"split"`` gives
            ``(y [B, n, H/8, W/8], cbcr [B, 2n, H/16, W/16])`` and needs 4:2:0 files.
        crop: ``(height, width)`` or one int, in pixels, multiples of 16. Random MCU-aligned
            crop when ``augment``, centre crop otherwise. None keeps whole images (they must then
            share one size).
        augment: random crop and (with ``flip``) random DCT-domain horizontal flip. Defaults to
            True for the train split and False otherwise.
        flip: allow the random horizontal flip when augmenting.
        shuffle: reshuffle every epoch; defaults to ``augment``.
        seed: seed for shuffling and augmentation; the same seed gives the same batches.
        workers: worker processes (0 loads in the calling process).
        skip_bad: skip unreadable files instead of raising; see :attr:`skipped`.
        stats: per-channel normalisation; None yields raw values.
        small: images smaller than ``crop``: ``"pad"`` with mid-grey blocks, or ``"error"``.
        drop_last: drop the last incomplete batch.
        backend: JPEG decoding backend passed to :func:`cdomain.read_coefficients`.
        transform: a DCT-domain transform of each image right after reading, given the
            sample's random generator (for example a random JPEG quality).
        target: ``target(index, region)`` gives each sample's target (default: its label).
        scale: ``(low, high)`` range of DCT-domain downscale factors for augmented samples
            (RandomResizedCrop-like): each draws 1, 2 or 4 from the range, takes a random region
            of that many times ``crop`` and downscales it to ``crop`` on the coefficients
            (:func:`cdomain.data.dct_transforms.random_scaled_region`). Needs ``crop``; None
            (the default) or ``(1, 1)`` crops without rescaling. Unaugmented samples are not
            rescaled.
        device: the batch path (DCT inputs): workers only decode, crop, flip and pack int16
            coefficients, and one batched kernel call on ``device`` (``"cuda"``: Numba CUDA on
            torch's current stream; ``"cpu"``: the Numba CPU kernels) makes the inputs,
            identical to those of the default per-sample path (``device=None``). Inputs then
            arrive on ``device``; targets stay on the CPU. On the CPU a few output buffers are
            reused for the loader's life, each only once nothing outside holds it.
        strict: False decodes corrupt JPEG data as libjpeg does (``read_coefficients``).
        transcode: a cache folder: files refused as an unsupported format (CMYK, RGB-coded,
            12-bit, PNG, ...) are read from YCbCr JPEG copies written there
            (:mod:`cdomain.jpeg.transcode`) and listed in :attr:`transcoded_files`.

    Iterating yields ``(inputs, labels)``; each pass over the loader is one epoch and advances
    the epoch counter used for shuffling and augmentation.

    A plain crop (no ``transform``, no ``scale``) of a file the loader's process has already
    decoded whole, strictly and without fault, is planned from the file's header and decoded only
    down to the crop's last block row (``read_coefficients(..., rows=)``); the first read of
    every file is whole, so corrupt files are refused as before, and batches do not change.
    """

    input = "dct"

    def __init__(
        self,
        source: DataSource,
        *,
        split: str | None = None,
        batch_size: int = 64,
        fbs: int = 64,
        layout: str = "merged",
        crop: int | Sequence[int] | None = None,
        augment: bool | None = None,
        flip: bool = True,
        shuffle: bool | None = None,
        seed: int = 0,
        workers: int = 0,
        skip_bad: bool = False,
        stats: ChannelStats | None = None,
        small: str = "pad",
        drop_last: bool = False,
        backend: str = "auto",
        transform: SampleTransform | None = None,
        target: TargetFn | None = None,
        scale: tuple[int, int] | None = None,
        device: str | torch.device | None = None,
        strict: bool = True,
        transcode: str | os.PathLike[str] | None = None,
    ) -> None:
        if scale is not None and scale_factors(scale) != (1,) and crop is None:
            raise ValueError("scale (a downscale range) needs crop, the size every sample is cut to")
        if device is not None and self.input == "rgb":
            raise ValueError("device= applies to DCT inputs only; RGBLoader decodes pixels in its workers")
        if self.input == "rgb":
            fbs, layout = 1, "merged"
        if not 1 <= int(fbs) <= 64:
            raise ValueError(f"fbs must be in 1..64, got {fbs}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        if small not in SMALL_POLICIES:
            raise ValueError(f"small must be one of {', '.join(SMALL_POLICIES)}, got {small!r}")
        crop_hw = _crop_size(crop)
        if stats is not None and stats.fbs != fbs:
            raise ValueError(f"stats are for fbs={stats.fbs}, loader has fbs={fbs}")
        self.samples = resolve_source(source, split)
        augment = (split in (None, "train")) if augment is None else augment
        dataset = JPEGDataset(
            self.samples,
            input=self.input,
            fbs=int(fbs),
            layout=layout,
            crop=crop_hw,
            augment=augment,
            flip=flip,
            seed=seed,
            stats=stats,
            small=small,
            skip_bad=skip_bad,
            backend=backend,
            transform=transform,
            target=target,
            scale=None if scale is None or scale_factors(scale) == (1,) else tuple(scale),
            strict=strict,
            transcode=None if transcode is None else os.fspath(transcode),
        )
        super().__init__(dataset, batch_size=batch_size, shuffle=augment if shuffle is None else shuffle, seed=seed,
                         workers=workers, drop_last=drop_last)
        self.device: torch.device | None = None
        self._channels = None  # the batch path's device step, kept across epochs with its output buffers
        if device is not None:
            try:
                self.device = torch.device(device)
            except (RuntimeError, TypeError):
                raise ValueError(f"device must be None, 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
            if self.device.type == "cuda" and not torch.cuda.is_available():
                raise ValueError(f"device={device!r}: no CUDA device is available")
            dataset.packed = True
            self.pin_memory = self.device.type == "cuda"

    def packed_batches(self) -> Iterator[tuple[Any, torch.Tensor]]:
        """One epoch of ``(batch, targets)`` before the device step, ``batch`` being the packed
        :class:`~cdomain.data.batch_path.CoefficientBatch` (only with ``device=``)."""
        if not self.dataset.packed:
            raise ValueError("packed_batches needs a loader made with device=")
        from cdomain.data.batch_path import CoefficientBatch
        from cdomain.data.batch_slots import SlotTicket

        for batch, targets in super().__iter__():
            if isinstance(batch, SlotTicket):  # copied out: the slot goes back to its worker
                batch = self.dataset.slots.read(batch, CoefficientBatch.clone)
            yield batch, targets

    def _prepare_workers(self) -> None:
        """Give the batch path's workers shared-memory slots for their batches when the model is
        on the CPU and every batch has one size (``crop``); see :mod:`cdomain.data.batch_slots`."""
        dataset = self.dataset
        dataset.slots = None
        if dataset.packed and self.device.type == "cpu" and self.workers > 0 and dataset.crop is not None:
            from cdomain.data.batch_slots import BatchSlots, slot_bytes

            rows, cols = dataset.crop[0] // 8, dataset.crop[1] // 8
            dataset.slots = BatchSlots.create(self.workers, slot_bytes(self.batch_size, dataset.fbs, rows, cols))

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        if not self.dataset.packed:
            yield from super().__iter__()
            return
        from cdomain.data.batch_path import BatchChannels
        from cdomain.data.batch_slots import SlotTicket

        if self._channels is None or self._channels.stats is not self.dataset.stats:
            self._channels = BatchChannels(self.dataset.fbs, self.dataset.layout, self.dataset.stats, self.device)
        channels = self._channels
        for batch, targets in super().__iter__():
            if isinstance(batch, SlotTicket):  # read in place, then the slot goes back to its worker
                yield self.dataset.slots.read(batch, channels), targets
            else:
                yield channels(batch), targets

    @property
    def stats(self) -> ChannelStats | None:
        return self.dataset.stats

    @stats.setter
    def stats(self, stats: ChannelStats | None) -> None:
        if stats is not None and stats.fbs != self.dataset.fbs:
            raise ValueError(f"stats are for fbs={stats.fbs}, loader has fbs={self.dataset.fbs}")
        self.dataset.stats = stats
        self.reset_workers()  # workers hold a copy of the dataset

    @property
    def input_spec(self) -> InputSpec:
        """What the batches contain, in the form models declare their expected input."""
        if self.input == "rgb":
            return InputSpec("rgb", "rgb", None, 3, 1)
        fbs = self.dataset.fbs
        if self.dataset.layout == "merged":
            return InputSpec("dct", "merged", fbs, 3 * fbs, 8)
        return InputSpec("dct", "split", fbs, (fbs, 2 * fbs), (8, 16))

    def compute_stats(self, max_images: int = 512) -> ChannelStats:
        """Per-channel mean/std of the input channels over up to ``max_images`` samples.

        Uses the centre region without augmentation or normalisation; these are the training
        statistics that a model stores with its weights.
        """
        dataset = self.dataset
        count = min(max_images, len(dataset))
        indices = np.random.default_rng(self.seed).permutation(len(dataset))[:count]
        fbs = dataset.fbs
        total = np.zeros(3 * fbs)
        total_sq = np.zeros(3 * fbs)
        weight = np.zeros(3 * fbs)
        saved = dataset.augment
        dataset.augment = False
        try:
            for index in indices:
                try:
                    sample, _ = dataset.load_region(int(index), stats=False)
                except (JPEGError, ValueError):
                    if not dataset.skip_bad:
                        raise
                    continue
                parts = [sample] if not isinstance(sample, tuple) else list(sample)
                offset = 0
                for part in parts:
                    flat = part.reshape(part.shape[0], -1).astype(np.float64)
                    rows = slice(offset, offset + part.shape[0])
                    total[rows] += flat.sum(axis=1)
                    total_sq[rows] += (flat**2).sum(axis=1)
                    weight[rows] += flat.shape[1]
                    offset += part.shape[0]
        finally:
            dataset.augment = saved
        if not weight.any():
            raise ValueError("no readable samples to compute channel statistics from")
        mean = total / weight
        std = np.sqrt(np.maximum(total_sq / weight - mean**2, 0.0))
        return ChannelStats(mean, std)




class DCTLoader(JPEGLoader):
    """Batches of dequantized, frequency-band-selected DCT coefficients laid out as channels.

    Takes the arguments of :class:`JPEGLoader`. With the default ``layout="merged"`` and
    ``fbs=n`` the inputs are ``[B, 3n, H/8, W/8]``.
    """

    input = "dct"


class RGBLoader(JPEGLoader):
    """Batches of decoded pixels ``[B, 3, H, W]`` (float, 0..255 before normalisation).

    The same files, crops and flips as :class:`DCTLoader` (the regions are cut in the DCT domain
    and decoded with :meth:`DCTImage.to_rgb`), so RGB and DCT networks see the same data;
    ``fbs`` and ``layout`` do not apply.
    """

    input = "rgb"


def _crop_size(crop: int | Sequence[int] | None) -> tuple[int, int] | None:
    if crop is None:
        return None
    height, width = (crop, crop) if isinstance(crop, int) else tuple(crop)
    if height < CROP_MULTIPLE or width < CROP_MULTIPLE or height % CROP_MULTIPLE or width % CROP_MULTIPLE:
        raise ValueError(f"crop must be a positive multiple of {CROP_MULTIPLE} pixels, got {height}x{width}")
    return int(height), int(width)
