"""The device-side batch path of :class:`cdomain.data.loader.DCTLoader`.

Per-sample work is cut to what must happen per file. A worker decodes the entropy-coded
coefficients, then :func:`pack_sample` cuts the block-aligned crop, flips it and keeps the
``fbs`` lowest zigzag frequencies, as int16 planes in the network's channel order (one kernel
call per file for all three components; :func:`cdomain.kernels.pack_region` is the same for
one). :func:`collate_packed` stacks a batch into a :class:`CoefficientBatch` (int16
coefficients, quantization tables, requantization targets, the chroma factor), which the
DataLoader pins when the model is on a GPU. On the model's device :class:`BatchChannels` does
dequantization, requantization (jpeg-aug), frequency band selection, layout, chroma repeat and
normalisation in one :func:`cdomain.kernels.dequantize_batch` call per batch: Numba CUDA on a
GPU (on torch's current stream, through ``__cuda_array_interface__``), the Numba CPU kernels
otherwise. The result equals the per-sample path's tensors exactly.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from typing import Any, Sequence

import numpy as np
import torch

from cdomain import kernels
from cdomain.data.dct_transforms import ChannelStats, check_layout, file_tables
from cdomain.jpeg.image import DCTImage
from cdomain.kernels import _host


@dataclass(frozen=True)
class PackedSample:
    """One sample as a worker hands it over: int16 luma ``[n, rows, cols]``, chroma
    ``[2, n, rows / ry, cols / rx]`` (None for grayscale), one plane per kept frequency, with
    its ratio ``(ry, rx)``, the uint16 tables ``[3, 8, 8]`` and the requantization targets (or
    None)."""

    luma: np.ndarray
    chroma: np.ndarray | None
    ratio: tuple[int, int]
    tables: np.ndarray
    targets: np.ndarray | None


def pack_sample(
    image: DCTImage, fbs: int, layout: str, box: tuple[int, int, int, int], flip: bool,
    targets: Sequence[np.ndarray] | None = None,
) -> PackedSample:
    """Crop ``box`` (luma blocks ``top, left, rows, cols``), flip, and keep ``fbs`` frequencies
    of every component of ``image``; its tables are checked once here, for the whole file."""
    top, left, rows, cols = box
    ry, rx = check_layout(image, layout, rows, cols)
    tables = np.array(image.quant_tables)
    if tables.dtype != np.uint16 or tables.shape[1:] != (8, 8) or not tables.all():
        file_tables(image)  # raises unless every entry is in 1..65535
        tables = tables.astype(np.uint16)
    if image.num_components > 1:
        luma, chroma = _host.pack_colour(image.coefficients, box, (ry, rx), flip, fbs)
    else:
        luma, chroma = _host.pack_region(image.y, top, left, rows, cols, flip, fbs), None
        tables = np.ones((3, 8, 8), np.uint16)
        tables[0] = image.quant_tables[0]
    target = None
    if targets is not None:
        target = np.ones((3, 8, 8), np.uint16)
        target[: len(targets)] = np.stack(targets)
    return PackedSample(luma, chroma, (ry, rx), tables, target)


@dataclass
class CoefficientBatch:
    """A collated batch of packed samples, as it crosses to the model's device.

    ``luma`` int16 ``[B, n, bh, bw]``, ``chroma`` int16 ``[B, 2, n, ch, cw]``, ``tables`` and
    ``targets`` (or None) int32 ``[B, 3, 8, 8]``; chroma block ``(i, j)`` covers luma blocks
    ``upsample = (fy, fx)`` times as many.
    """

    luma: torch.Tensor
    chroma: torch.Tensor
    tables: torch.Tensor
    targets: torch.Tensor | None
    upsample: tuple[int, int]

    def _tensors(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}

    def _map(self, change: Any) -> "CoefficientBatch":
        """The same batch with ``change(tensor)`` in place of each tensor."""
        return CoefficientBatch(**{**self.__dict__, **{name: change(t) for name, t in self._tensors().items()}})

    def pin_memory(self, device: Any = None) -> "CoefficientBatch":
        """A copy in page-locked memory (the DataLoader calls this when pinning)."""
        return self._map(torch.Tensor.pin_memory)

    def to(self, device: Any, non_blocking: bool = True) -> "CoefficientBatch":
        return self._map(lambda tensor: tensor.to(device, non_blocking=non_blocking))

    def clone(self) -> "CoefficientBatch":
        """A copy that owns its memory (of a batch read in place from a shared-memory slot)."""
        return self._map(torch.Tensor.clone)

    @property
    def nbytes(self) -> int:
        """Bytes that cross to the device."""
        return sum(t.numel() * t.element_size() for t in self._tensors().values())

    def __len__(self) -> int:
        return int(self.luma.shape[0])


def collate_packed(samples: Sequence[PackedSample], layout: str) -> CoefficientBatch:
    """Stack packed samples into one :class:`CoefficientBatch`.

    Chroma of every sample must lie on one grid: the split layout's half-resolution grid, or for
    the merged layout the colour samples' common grid. A merged batch that mixes subsamplings
    (4:2:0 and 4:4:4, say) repeats each chroma plane onto the luma grid here; grayscale samples
    get zero chroma with unit tables (which dequantize to the per-sample path's zero chroma).
    """
    shapes = {s.luma.shape for s in samples}
    if len(shapes) > 1:
        listed = ", ".join(sorted(str(shape[1:]) for shape in shapes))
        raise ValueError(f"samples in a batch have different shapes ({listed} blocks); pass crop= to cut a common size")
    n, rows, cols = samples[0].luma.shape
    ratios = {s.ratio for s in samples if s.chroma is not None}
    if layout == "split":
        ratio = (2, 2)
    elif len(ratios) == 1:
        ratio = ratios.pop()
    else:  # no colour sample, or mixed subsampling: chroma on the luma grid
        ratio = (1, 1)
    ry, rx = ratio
    chroma = np.zeros((len(samples), 2, n, rows // ry, cols // rx), np.int16)
    for b, sample in enumerate(samples):
        if sample.chroma is None:
            continue
        part = sample.chroma
        fy, fx = sample.ratio[0] // ry, sample.ratio[1] // rx
        if (fy, fx) != (1, 1):
            part = np.repeat(np.repeat(part, fy, axis=2), fx, axis=3)
        chroma[b] = part
    targets = None
    if any(s.targets is not None for s in samples):
        targets = torch.from_numpy(
            np.stack([s.targets if s.targets is not None else s.tables for s in samples]).astype(np.int32)
        )
    return CoefficientBatch(
        luma=torch.from_numpy(np.stack([s.luma for s in samples])),
        chroma=torch.from_numpy(chroma),
        tables=torch.from_numpy(np.stack([s.tables for s in samples]).astype(np.int32)),
        targets=targets,
        upsample=ratio,
    )


class BatchChannels:
    """Network inputs from a :class:`CoefficientBatch`, computed on ``device`` in one call.

    ``merged`` gives float32 ``[B, 3n, bh, bw]``, ``split`` gives ``(y [B, n, bh, bw],
    cbcr [B, 2n, bh / 2, bw / 2])``, normalised by ``stats`` when given: what the per-sample
    path of :class:`cdomain.data.loader.DCTLoader` gives, bit for bit.
    """

    def __init__(self, fbs: int, layout: str, stats: ChannelStats | None, device: Any) -> None:
        self.fbs, self.layout, self.stats = fbs, layout, stats
        self.device = torch.device(device)
        # On the CPU every fresh output is new memory the kernel must fault in page by page
        # (megabytes per batch); outputs nobody holds any more are written again instead, for
        # as long as this object lives (a loader keeps one across its epochs). On a GPU torch's
        # caching allocator already reuses memory.
        self.outputs = RecycledOutputs() if self.device.type == "cpu" and RecycledOutputs.available else None

    def _empty(self, *shapes: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
        if self.outputs is not None:
            return self.outputs.take(shapes)
        return tuple(torch.empty(shape, dtype=torch.float32, device=self.device) for shape in shapes)

    def __call__(self, batch: CoefficientBatch) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        n = self.fbs
        if self.device.type != "cpu":
            batch = batch.to(self.device)
        size, _, rows, cols = (int(s) for s in batch.luma.shape)
        mean = std = None
        if self.stats is not None:
            mean, std = self.stats.mean, self.stats.std
        upsample = batch.upsample if self.layout == "merged" else (1, 1)  # split keeps chroma at its own grid
        options = dict(targets=batch.targets, upsample=upsample, mean=mean, std=std)
        if self.layout == "merged":
            (out,) = self._empty((size, 3 * n, rows, cols))
            kernels.dequantize_batch(batch.luma, batch.chroma, batch.tables, out_luma=out[:, :n],
                                     out_chroma=out[:, n:], **options)
            return out
        luma, chroma = self._empty((size, n, rows, cols), (size, 2 * n, rows // 2, cols // 2))
        kernels.dequantize_batch(batch.luma, batch.chroma, batch.tables, out_luma=luma, out_chroma=chroma, **options)
        return luma, chroma


class RecycledOutputs:
    """float32 CPU tensors for batch outputs, handed out again once nothing outside holds them.

    A batch output is reused only when no Python reference to it and no view, NumPy array or
    autograd record of its memory remains outside this pool (counted through torch's reference
    counts), so a caller never sees a tensor it still holds change: a training loop that keeps
    the previous batch until the next one arrives simply gets one of the other ``size``
    buffers. Only where torch can count (``available``).
    """

    available = hasattr(torch._C, "_storage_Use_Count")

    def __init__(self, size: int = 3) -> None:
        self.size = size
        self.entries: list[tuple[torch.Tensor, ...]] = []
        probe = (torch.empty(1),)  # the reference counts of an output held by this pool alone
        self.entries.append(probe)
        self.baseline = self._counts(probe)[0]
        self.entries.clear()

    @staticmethod
    def _counts(entry: tuple[torch.Tensor, ...]) -> list[tuple[int, int]]:
        """Per tensor: Python references to it, and C++ uses of its memory (views, NumPy
        arrays, autograd records all count)."""
        return [(sys.getrefcount(tensor), torch._C._storage_Use_Count(tensor.untyped_storage()._cdata))
                for tensor in entry]

    def _free(self, entry: tuple[torch.Tensor, ...]) -> bool:
        return all(counts == self.baseline for counts in self._counts(entry))

    def take(self, shapes: tuple[tuple[int, ...], ...]) -> tuple[torch.Tensor, ...]:
        """Tensors of ``shapes``: a free earlier output of the same shapes, or new ones."""
        for entry in self.entries:
            if tuple(tuple(t.shape) for t in entry) == shapes and self._free(entry):
                return entry
        entry = tuple(torch.empty(shape) for shape in shapes)
        if len(self.entries) >= self.size:
            free = [old for old in self.entries if self._free(old)]
            self.entries.remove(free[0] if free else self.entries[0])
        self.entries.append(entry)
        return entry


def float_batch_bytes(batch: CoefficientBatch, fbs: int, layout: str) -> int:
    """Bytes of the float32 inputs the per-sample path would copy to the device for ``batch``."""
    size, _, rows, cols = (int(s) for s in batch.luma.shape)
    if layout == "merged":
        return size * 3 * fbs * rows * cols * 4
    return size * (fbs * rows * cols + 2 * fbs * (rows // 2) * (cols // 2)) * 4
