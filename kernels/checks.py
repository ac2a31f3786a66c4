"""Argument checks of the public kernel functions, shared by every backend.

The kernels assume valid input (a bad shape would read out of bounds), so each public function
checks its arguments here before any backend runs, and a bad argument raises ``ValueError``
naming it. The checks read shapes and dtypes only, except for values that must be in range:
quantization tables on the host (entries 1..65535) and ``mean``/``std``. Those are small, and
a check that normalises them also returns the form the kernels take, so no backend converts
them again; a single ``[8, 8]`` table, the common case that repeats on every call, is checked
and converted once per distinct content (a small cache keyed by its bytes).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ._host import table_rows
from .dispatch import host, is_torch, kind, np_dtype, shape_of


def blocks(name: str, x: Any, dtype: np.dtype | None = np.dtype(np.int16)) -> tuple[int, ...]:
    """Shape of a ``[..., bh, bw, 8, 8]`` block array, after checking dtype and shape."""
    shape = shape_of(x)
    if len(shape) < 4 or shape[-2:] != (8, 8):
        raise ValueError(f"{name} must have shape [..., bh, bw, 8, 8], got {list(shape)}")
    if dtype is not None and np_dtype(x) != dtype:
        raise ValueError(f"{name} must be {dtype}, got {np_dtype(x)}")
    return shape


def dct_blocks(name: str, blocks: Any) -> tuple[int, ...]:
    """Shape of float32 ``[..., 8, 8]`` blocks for the DCT function ``name``."""
    shape = shape_of(blocks)
    if len(shape) < 2 or shape[-2:] != (8, 8):
        raise ValueError(f"{name} takes [..., 8, 8] blocks, got shape {list(shape)}")
    if np_dtype(blocks) != np.float32:
        raise ValueError(f"{name} takes float32 blocks, got {np_dtype(blocks)}")
    return shape


def _table_rows(values: np.ndarray) -> np.ndarray | None:
    """Host table values as read-only contiguous int64 ``[T, 64]`` (``T`` >= 1: an empty batch
    gets one dummy table so kernels index safely), or None if an entry is outside 1..65535."""
    if values.size and (values.min() < 1 or values.max() > 65535):
        return None
    rows = table_rows(values)
    rows.flags.writeable = False
    return rows


@functools.lru_cache(maxsize=256)
def _single_table_rows(dtype: str, data: bytes) -> np.ndarray | None:
    """:func:`_table_rows` of one ``[8, 8]`` table, by content."""
    return _table_rows(np.frombuffer(data, dtype=np.dtype(dtype)))


def quant_table(name: str, table: Any, lead: tuple[int, ...]) -> Any:
    """Check an integer table ``[8, 8]`` or ``[*lead, 8, 8]`` with entries 1..65535.

    Returns a host table as read-only int64 ``[T, 64]`` (``T`` = 1 or the batch size). A table
    already on the GPU is returned as it is, with its values unchecked: reading them would
    wait for the device.
    """
    shape = shape_of(table)
    if shape != (8, 8) and shape != (*lead, 8, 8):
        raise ValueError(
            f"{name} must have shape [8, 8] or {[*lead, 8, 8]} (one per image), got {list(shape)}"
        )
    dtype = np_dtype(table)
    if not np.issubdtype(dtype, np.integer):
        raise ValueError(f"{name} must have an integer dtype, got {dtype}")
    if type(table) is np.ndarray:
        values = table
    elif kind(table) == "cuda":
        return table
    else:
        values = host(table)
    if values.size == 64:
        rows = _single_table_rows(values.dtype.str, values.tobytes())
    else:
        rows = _table_rows(values)
    if rows is None:
        raise ValueError(f"{name} entries must be in 1..65535")
    return rows


def zigzag_count(n: Any) -> int:
    """``n``, the number of zigzag frequencies kept, as an int in 1..64."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= int(n) <= 64:
        raise ValueError(f"n (number of zigzag frequencies kept) must be an int in 1..64, got {n!r}")
    return int(n)


def factor(name: str, value: Any, allowed: tuple[int, ...] | None = None) -> tuple[int, int]:
    """A pair ``(fy, fx)`` of ints >= 1 (and in ``allowed`` if given)."""
    try:
        fy, fx = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (fy, fx), got {value!r}") from None
    for f in (fy, fx):
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f < 1:
            raise ValueError(f"{name} entries must be ints >= 1, got {value!r}")
        if allowed is not None and f not in allowed:
            raise ValueError(f"{name} entries must be in {allowed}, got {value!r}")
    return int(fy), int(fx)


def normalisation(mean: Any, std: Any, n: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """float32 ``[n]`` mean and std (defaults 0 and 1) and whether to normalise at all."""
    if mean is None and std is None:
        return np.zeros(n, np.float32), np.ones(n, np.float32), False
    arrays = []
    for name, value, default in (("mean", mean, 0.0), ("std", std, 1.0)):
        if value is None:
            arrays.append(np.full(n, default, np.float32))
            continue
        array = np.asarray(host(value), dtype=np.float32)
        if array.shape != (n,):
            raise ValueError(f"{name} must have shape [{n}] (one value per kept frequency), got {list(array.shape)}")
        arrays.append(np.ascontiguousarray(array))
    if np.any(arrays[1] == 0) or not np.all(np.isfinite(arrays[1])):
        raise ValueError("std entries must be finite and non-zero")
    return arrays[0], arrays[1], True


def output(out: Any, expected: tuple[int, ...], like: Any) -> None:
    """``out`` is a writable float32 array of shape ``expected`` of the same kind as ``like``."""
    if shape_of(out) != expected:
        raise ValueError(f"out must have shape {list(expected)}, got {list(shape_of(out))}")
    if np_dtype(out) != np.float32:
        raise ValueError(f"out must be float32, got {np_dtype(out)}")
    on_device = kind(like) == "cuda"
    if (kind(out) == "cuda") != on_device:
        raise ValueError("out must be on the same device as coefficients")
    if on_device and is_torch(out) != is_torch(like):
        raise ValueError("out must be the same kind of array as coefficients (torch tensor or Numba device array)")
    if not on_device and not host(out).flags.writeable:
        raise ValueError("out is read-only")


def region(shape: tuple[int, ...], top: Any, left: Any, height: Any, width: Any) -> tuple[int, int, int, int]:
    """A crop region (in blocks) inside the ``[..., bh, bw, 8, 8]`` grid, as ints."""
    bh, bw = shape[-4], shape[-3]
    for name, value in (("top", top), ("left", left), ("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"crop {name} must be an int (in blocks), got {value!r}")
    if top < 0 or left < 0 or height < 1 or width < 1 or top + height > bh or left + width > bw:
        raise ValueError(
            f"crop region rows {top}..{top + height - 1}, columns {left}..{left + width - 1} "
            f"(blocks) is not inside the {bh}x{bw} block grid"
        )
    return int(top), int(left), int(height), int(width)


def plane(name: str, x: Any, ndim: int | None = None) -> tuple[int, ...]:
    """Shape of a uint8 sample plane ``[..., H, W]`` (exactly ``ndim`` axes if given)."""
    shape = shape_of(x)
    if ndim is not None:
        if len(shape) != ndim:
            raise ValueError(f"{name} must be {ndim}-D [h, w], got shape {list(shape)}")
    elif len(shape) < 2 or min(shape[-2:]) < 1:
        raise ValueError(f"{name} must have shape [..., H, W] with H, W >= 1, got {list(shape)}")
    if np_dtype(x) != np.uint8:
        raise ValueError(f"{name} must be uint8, got {np_dtype(x)}")
    return shape


def upsampling(x: Any, factor: tuple[int, int], out_shape: Any, method: str) -> tuple[int, int]:
    """``out_shape`` as ints ``(H, W)``, after checking ``method``, that the plane ``x`` is uint8
    ``[h, w]`` and that it covers ``out_shape`` at ``factor``."""
    if method not in ("fancy", "nearest"):
        raise ValueError(f"method must be 'fancy' or 'nearest', got {method!r}")
    plane_shape = plane("plane", x, ndim=2)
    try:
        height, width = (int(s) for s in out_shape)
    except (TypeError, ValueError):
        raise ValueError(f"out_shape must be a pair (H, W), got {out_shape!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"out_shape must be positive, got {out_shape!r}")
    fy, fx = factor
    need = (-(-height // fy), -(-width // fx))
    if plane_shape[0] < need[0] or plane_shape[1] < need[1]:
        raise ValueError(
            f"plane {list(plane_shape)} is too small for out_shape {[height, width]} at factor "
            f"{(fy, fx)}: needs at least {list(need)}"
        )
    return height, width


def colour_planes(y: Any, cb: Any, cr: Any) -> tuple[int, ...]:
    """Shape of the uint8 planes ``y``, ``cb``, ``cr``, all ``[..., H, W]`` alike."""
    shape = shape_of(y)
    if len(shape) < 2:
        raise ValueError(f"y must have shape [..., H, W], got {list(shape)}")
    for name, x in (("y", y), ("cb", cb), ("cr", cr)):
        if shape_of(x) != shape:
            raise ValueError(f"{name} has shape {list(shape_of(x))}, expected {list(shape)} like y")
        if np_dtype(x) != np.uint8:
            raise ValueError(f"{name} must be uint8, got {np_dtype(x)}")
    return shape


def rgb(x: Any) -> tuple[int, ...]:
    """Shape of a uint8 ``[..., H, W, 3]`` RGB image."""
    shape = shape_of(x)
    if len(shape) < 3 or shape[-1] != 3:
        raise ValueError(f"rgb must have shape [..., H, W, 3], got {list(shape)}")
    if np_dtype(x) != np.uint8:
        raise ValueError(f"rgb must be uint8, got {np_dtype(x)}")
    return shape


def packed(name: str, x: Any, ndim: int) -> tuple[int, ...]:
    """Shape of packed int16 coefficients with ``ndim`` axes ``[..., n, h, w]``, ``n`` in 1..64
    frequency planes."""
    shape = shape_of(x)
    if len(shape) != ndim or not 1 <= shape[-3] <= 64:
        raise ValueError(f"{name} must be {ndim}-D packed coefficients [..., n, h, w] with n in 1..64, "
                         f"got {list(shape)}")
    if np_dtype(x) != np.int16:
        raise ValueError(f"{name} must be int16, got {np_dtype(x)}")
    return shape


def batch_tables(name: str, tables: Any, batch: int) -> None:
    """Integer ``[batch, 3, 8, 8]`` tables; host values must be in 1..65535 (device ones are not
    read, which would wait for the device)."""
    shape = shape_of(tables)
    if shape != (batch, 3, 8, 8):
        raise ValueError(f"{name} must have shape [{batch}, 3, 8, 8] (Y, Cb, Cr per image), got {list(shape)}")
    if not np.issubdtype(np_dtype(tables), np.integer):
        raise ValueError(f"{name} must have an integer dtype, got {np_dtype(tables)}")
    if kind(tables) != "cuda":
        values = host(tables)
        if values.size and (values.min() < 1 or values.max() > 65535):
            raise ValueError(f"{name} entries must be in 1..65535")
