"""The CUDA side of the dispatch: device views, output allocation, streams.

``dispatch.call`` imports this module only for CUDA inputs, after ``checks.py`` has validated
the arguments; its functions have the names and arguments of those in ``_host.py``.

Torch CUDA tensors are viewed through ``__cuda_array_interface__`` (``numba.cuda.as_cuda_array``,
no copy) and kernels run on the tensor device's current torch stream, wrapped with
``numba.cuda.external_stream``, so they are ordered with the surrounding torch work and
nothing synchronises with the host. Outputs are allocated by torch and returned as tensors.
Numba device arrays (including the CUDA simulator's) run on Numba's default stream and give
device arrays. Host-side tables, ``mean`` and ``std`` are copied to the device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cdomain.jpeg.tables import ZIGZAG

from . import cuda as kernels
from . import reference
from .dispatch import is_torch as _is_torch

_DCT = np.ascontiguousarray(reference.dct_matrix_scaled())
_COLOUR = tuple(np.ascontiguousarray(t) for t in reference.ycbcr_tables())


class _Context:
    """Where the kernels of one call run and how their arrays are made."""

    def __init__(self, like: Any):
        from numba import cuda

        self.cuda = cuda
        self.torch = _is_torch(like)
        self.stream = None
        if self.torch:
            import torch

            self.device = like.device
            torch_stream = torch.cuda.current_stream(self.device)
            self.stream = cuda.external_stream(torch_stream.cuda_stream)

    def device_scope(self):
        """Numba's current device must be the tensor's device for views and launches."""
        if self.torch:
            return self.cuda.gpus[self.device.index]
        from contextlib import nullcontext

        return nullcontext()

    def view(self, x: Any) -> Any:
        """A Numba device view of a tensor or device array (no copy)."""
        if self.torch:
            return self.cuda.as_cuda_array(x.detach(), sync=False)
        return x

    def contiguous(self, x: Any, shape: tuple[int, ...]) -> Any:
        """``x`` reshaped to ``shape`` (a device copy only if it is not contiguous)."""
        if self.torch:
            return x.detach().contiguous().reshape(shape)
        if not x.is_c_contiguous():
            x = x.copy_to_host()
            return self.cuda.to_device(np.ascontiguousarray(x).reshape(shape))
        return x.reshape(shape)

    def empty(self, shape: tuple[int, ...], dtype: Any) -> tuple[Any, Any]:
        """A new output: (what to return, its device view)."""
        if self.torch:
            import torch

            torch_dtype = torch.from_numpy(np.empty(0, dtype)).dtype
            tensor = torch.empty(shape, dtype=torch_dtype, device=self.device)
            return tensor, self.view(tensor)
        array = self.cuda.device_array(shape, dtype)
        return array, array

    def upload(self, array: np.ndarray) -> Any:
        """A small host array on the device, ordered on this call's stream."""
        array = np.ascontiguousarray(array)
        if not array.flags.writeable:  # torch warns about (and cannot share) read-only arrays
            array = array.copy()
        if self.torch:
            import torch

            tensor = torch.as_tensor(array, device=self.device)
            return self.view(tensor)
        return self.cuda.to_device(array)

    def table(self, table: Any, flat: bool = True) -> Any:
        """A quantization table on the device as int64 ``[T, 64]``."""
        if _is_torch(table) and table.is_cuda:
            return self.view(table.detach().to(dtype=__import__("torch").int64).reshape(-1, 64).contiguous())
        if not isinstance(table, np.ndarray) and hasattr(table, "copy_to_host"):
            table = table.copy_to_host()
        elif _is_torch(table):
            table = table.detach().cpu().numpy()
        return self.upload(np.asarray(table, dtype=np.int64).reshape(-1, 64))


def _lead(shape: tuple[int, ...], tail: int) -> tuple[tuple[int, ...], int]:
    lead = tuple(shape[:-tail])
    return lead, math.prod(lead)


def dequantize_select(coefficients, quant_table, n, fy, fx, mean, std, normalize, out):
    ctx = _Context(coefficients)
    shape = tuple(coefficients.shape)
    lead, batch = _lead(shape, 4)
    bh, bw = shape[-4], shape[-3]
    expected = (*lead, n, bh * fy, bw * fx)
    with ctx.device_scope():
        coef = ctx.view(ctx.contiguous(coefficients, (batch, bh, bw, 8, 8)))
        table = ctx.table(quant_table)
        zz = ctx.upload(np.asarray(ZIGZAG[:n], dtype=np.int64))
        mean_d, std_d = ctx.upload(mean), ctx.upload(std)
        if out is None:
            result, target = ctx.empty((batch, n, bh * fy, bw * fx), np.float32)
            kernels.dequantize_select(coef, table, zz, fy, fx, mean_d, std_d, normalize, target, ctx.stream)
            return result.reshape(expected)
        target = _collapsed_out(ctx, out, len(lead), (batch, n, bh * fy, bw * fx))
        if target is not None:
            kernels.dequantize_select(coef, table, zz, fy, fx, mean_d, std_d, normalize, target, ctx.stream)
            return out
        # `out` is a torch view whose leading axes do not merge: one image at a time
        multi = table.shape[0] > 1
        for b, index in enumerate(np.ndindex(*lead)):
            one = ctx.view(out[index].unsqueeze(0))
            kernels.dequantize_select(
                coef[b : b + 1], table[b : b + 1] if multi else table, zz, fy, fx,
                mean_d, std_d, normalize, one, ctx.stream,
            )
        return out


def _collapsed_out(ctx: _Context, out: Any, lead_ndim: int, shape: tuple[int, ...]) -> Any:
    """A 4-D device view of ``out`` without copying, or None if torch cannot merge its axes."""
    if ctx.torch:
        try:
            return ctx.view(out.view(shape))
        except RuntimeError:
            return None
    if lead_ndim == 1:
        return out
    if out.is_c_contiguous():
        return out.reshape(shape)
    raise ValueError("a non-contiguous Numba device array `out` needs exactly one leading axis")


def hflip(coefficients):
    ctx = _Context(coefficients)
    shape = tuple(coefficients.shape)
    _, batch = _lead(shape, 4)
    with ctx.device_scope():
        coef = ctx.view(ctx.contiguous(coefficients, (batch, *shape[-4:])))
        result, target = ctx.empty((batch, *shape[-4:]), np.int16)
        kernels.hflip(coef, target, ctx.stream)
        return result.reshape(shape)


def crop(coefficients, top, left, height, width):
    ctx = _Context(coefficients)
    shape = tuple(coefficients.shape)
    lead, batch = _lead(shape, 4)
    dtype = np.dtype(coefficients.dtype) if not ctx.torch else coefficients.new_empty(0).cpu().numpy().dtype
    with ctx.device_scope():
        coef = ctx.view(ctx.contiguous(coefficients, (batch, *shape[-4:])))
        result, target = ctx.empty((batch, height, width, 8, 8), dtype)
        kernels.crop(coef, top, left, target, ctx.stream)
        return result.reshape(*lead, height, width, 8, 8)


def requantize(coefficients, table_from, table_to):
    ctx = _Context(coefficients)
    shape = tuple(coefficients.shape)
    _, batch = _lead(shape, 4)
    with ctx.device_scope():
        coef = ctx.view(ctx.contiguous(coefficients, (batch, *shape[-4:])))
        result, target = ctx.empty((batch, *shape[-4:]), np.int16)
        kernels.requantize(coef, ctx.table(table_from), ctx.table(table_to), target, ctx.stream)
        return result.reshape(shape)


def dct(blocks, inverse):
    ctx = _Context(blocks)
    shape = tuple(blocks.shape)
    _, batch = _lead(shape, 2)
    with ctx.device_scope():
        src = ctx.view(ctx.contiguous(blocks, (batch, 8, 8)))
        result, target = ctx.empty((batch, 8, 8), np.float32)
        d = ctx.upload(_DCT)
        if inverse:
            kernels.idct_8x8(src, ctx.upload(np.ones((1, 64), np.float64)), d, target, ctx.stream)
        else:
            kernels.fdct_8x8(src, d, target, ctx.stream)
        return result.reshape(shape)


def samples_from_blocks(coefficients, quant_table):
    ctx = _Context(coefficients)
    shape = tuple(coefficients.shape)
    lead, batch = _lead(shape, 4)
    bh, bw = shape[-4], shape[-3]
    with ctx.device_scope():
        coef = ctx.view(ctx.contiguous(coefficients, (batch, bh, bw, 8, 8)))
        result, target = ctx.empty((batch, bh * 8, bw * 8), np.uint8)
        kernels.samples_from_blocks(coef, ctx.table(quant_table), ctx.upload(_DCT), target, ctx.stream)
        return result.reshape(*lead, bh * 8, bw * 8)


def blocks_from_samples(plane, quant_table):
    ctx = _Context(plane)
    shape = tuple(plane.shape)
    lead, batch = _lead(shape, 2)
    h, w = shape[-2:]
    hp, wp = -(-h // 8) * 8, -(-w // 8) * 8
    with ctx.device_scope():
        samples = ctx.contiguous(plane, (batch, h, w))
        if (hp, wp) != (h, w):
            samples = _pad_edge(ctx, samples, hp, wp)
        result, target = ctx.empty((batch, hp // 8, wp // 8, 8, 8), np.int16)
        kernels.blocks_from_samples(ctx.view(samples), ctx.table(quant_table), ctx.upload(_DCT), target, ctx.stream)
        return result.reshape(*lead, hp // 8, wp // 8, 8, 8)


def _pad_edge(ctx: _Context, samples: Any, hp: int, wp: int) -> Any:
    """Replicate the last row and column up to ``hp x wp`` (libjpeg's encoder padding)."""
    if ctx.torch:
        import torch

        h, w = samples.shape[-2:]
        rows = torch.clamp(torch.arange(hp, device=samples.device), max=h - 1)
        cols = torch.clamp(torch.arange(wp, device=samples.device), max=w - 1)
        return samples[:, rows][:, :, cols].contiguous()
    host = samples.copy_to_host()
    padded = np.pad(host, ((0, 0), (0, hp - host.shape[1]), (0, wp - host.shape[2])), mode="edge")
    return ctx.cuda.to_device(np.ascontiguousarray(padded))


def upsample_plane(plane, fy, fx, height, width, fancy):
    ctx = _Context(plane)
    with ctx.device_scope():
        result, target = ctx.empty((height, width), np.uint8)
        kernels.upsample_plane(ctx.view(plane), fy, fx, fancy, target, ctx.stream)
        return result


def ycbcr_to_rgb(y, cb, cr):
    ctx = _Context(y)
    shape = tuple(y.shape)
    _, batch = _lead(shape, 2)
    flat = (batch, *shape[-2:])
    with ctx.device_scope():
        planes = [ctx.view(ctx.contiguous(p, flat)) for p in (y, cb, cr)]
        tables = tuple(ctx.upload(t) for t in _COLOUR)
        result, target = ctx.empty((*flat, 3), np.uint8)
        kernels.ycbcr_to_rgb(*planes, tables, target, ctx.stream)
        return result.reshape(*shape, 3)


def rgb_to_ycbcr(rgb):
    ctx = _Context(rgb)
    shape = tuple(rgb.shape)
    lead, batch = _lead(shape, 3)
    with ctx.device_scope():
        src = ctx.view(ctx.contiguous(rgb, (batch, *shape[-3:])))
        result, target = ctx.empty((batch, 3, *shape[-3:-1]), np.uint8)
        kernels.rgb_to_ycbcr(src, target, ctx.stream)
        return result.reshape(*lead, 3, *shape[-3:-1])


def dequantize_batch(luma, chroma, tables, targets, n, fy, fx, mean, std, normalize, out_luma, out_chroma):
    ctx = _Context(luma)
    batch, _, bh, bw = (int(s) for s in luma.shape)
    ch, cw = int(chroma.shape[3]), int(chroma.shape[4])
    zz = np.asarray(ZIGZAG[:n], dtype=np.int64)
    with ctx.device_scope():
        coef = ctx.view(ctx.contiguous(luma, (batch, n, bh, bw)))
        coef_c = ctx.view(ctx.contiguous(chroma, (batch, 2, n, ch, cw)))
        source = _zigzag_tables(ctx, tables, batch, zz)
        target = source if targets is None else _zigzag_tables(ctx, targets, batch, zz)
        mean_d, std_d = ctx.upload(mean), ctx.upload(std)
        results = []
        for out, shape in ((out_luma, (batch, n, bh, bw)), (out_chroma, (batch, 2 * n, ch * fy, cw * fx))):
            if out is None:
                results.append(ctx.empty(shape, np.float32))
            else:
                results.append((out, ctx.view(out)))
        kernels.dequantize_batch(coef, coef_c, source, target, targets is not None, fy, fx, mean_d, std_d,
                                 normalize, results[0][1], results[1][1], ctx.stream)
        return results[0][0], results[1][0]


def _zigzag_tables(ctx: _Context, tables: Any, batch: int, zz: np.ndarray) -> Any:
    """``[B, 3, 8, 8]`` tables as int64 ``[B, 3, n]`` in zigzag order, on the device."""
    if _is_torch(tables) and tables.is_cuda:
        import torch

        index = torch.as_tensor(zz, device=tables.device)
        return ctx.view(tables.detach().reshape(batch, 3, 64).to(torch.int64).index_select(2, index).contiguous())
    if not isinstance(tables, np.ndarray) and hasattr(tables, "copy_to_host"):
        tables = tables.copy_to_host()
    elif _is_torch(tables):
        tables = tables.detach().cpu().numpy()
    return ctx.upload(np.asarray(tables, dtype=np.int64).reshape(batch, 3, 64)[..., zz])
