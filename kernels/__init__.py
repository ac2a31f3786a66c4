"""DCT-domain kernels (installed as ``cdomain.kernels``): the one dispatch point.

Every public function validates its arguments and picks a backend from the type of its first
array argument; the result has the same type:

* NumPy arrays -> Numba CPU kernels (``cpu.py``), NumPy results.
* CPU torch tensors -> the same CPU kernels on a zero-copy ``.numpy()`` view, torch results.
* CUDA torch tensors -> Numba CUDA kernels (``cuda.py``) through ``__cuda_array_interface__``,
  launched on the tensor's current torch stream with no host copy, CUDA tensor results.
  Numba CUDA device arrays take the same path and give device arrays.

Small side arguments (quantization tables, ``mean``/``std``) may be host arrays even when the
data is on the GPU; they are copied to the device. ``reference.py`` holds the plain NumPy
definition of every operation, ``cpu.py`` and ``cuda.py`` the fast versions; tests check that
all three agree. Nothing here needs a GPU, or imports ``numba.cuda``, until a CUDA array
arrives.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from cdomain.jpeg.tables import ZIGZAG

from . import cpu, reference

if TYPE_CHECKING:
    import torch

    Array = Union[np.ndarray, torch.Tensor]
else:
    Array = Any

__all__ = [
    "dequantize_select",
    "hflip",
    "crop",
    "requantize",
    "idct_8x8",
    "fdct_8x8",
    "upsample_plane",
    "ycbcr_to_rgb",
    "rgb_to_ycbcr",
    "samples_from_blocks",
    "blocks_from_samples",
    "reference",
]

_ZIGZAG = np.ascontiguousarray(ZIGZAG, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# backends: what an input is, and how to get a NumPy view or a device view of it


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _kind(x: Any) -> str:
    """``"numpy"``, ``"torch"`` (CPU tensor) or ``"cuda"`` (CUDA tensor or device array)."""
    if _is_torch(x):
        return "cuda" if x.is_cuda else "torch"
    if hasattr(x, "__cuda_array_interface__") or type(x).__name__ == "FakeCUDAArray":
        return "cuda"  # a Numba device array (the simulator's has no __cuda_array_interface__)
    return "numpy"


def _np_dtype(x: Any) -> np.dtype:
    """The NumPy dtype of an array, tensor or device array, without touching its data."""
    if _is_torch(x):
        import torch

        return torch.empty(0, dtype=x.dtype).numpy().dtype
    if hasattr(x, "dtype"):
        return np.dtype(x.dtype)
    return np.asarray(x).dtype


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in np.shape(x)) if not hasattr(x, "shape") else tuple(x.shape)


def _host(x: Any) -> np.ndarray:
    """A NumPy view of a host array or CPU tensor (zero copy for tensors)."""
    if _is_torch(x):
        if x.is_cuda:
            return x.detach().cpu().numpy()
        return x.detach().resolve_conj().resolve_neg().numpy()
    if hasattr(x, "copy_to_host") and not isinstance(x, np.ndarray):
        return x.copy_to_host()
    return np.asarray(x)


def _wrap(result: np.ndarray, kind: str) -> Array:
    if kind == "torch":
        import torch

        return torch.from_numpy(result)
    return result


def _collapse(array: np.ndarray, lead_ndim: int) -> np.ndarray | None:
    """``array`` with its first ``lead_ndim`` axes merged into one, as a view; None if that
    needs a copy."""
    if lead_ndim == 1:
        return array
    if lead_ndim == 0:
        return array[None]
    merged = math.prod(array.shape[:lead_ndim])
    view = array.view()
    try:
        view.shape = (merged, *array.shape[lead_ndim:])
    except AttributeError:
        return None
    return view


# --------------------------------------------------------------------------------------------
# validation


def _check_blocks(name: str, x: Any, dtype: np.dtype | None = np.dtype(np.int16)) -> tuple:
    """Shape of a ``[..., bh, bw, 8, 8]`` block array, after checking dtype and shape."""
    shape = _shape(x)
    if len(shape) < 4 or shape[-2:] != (8, 8):
        raise ValueError(f"{name} must have shape [..., bh, bw, 8, 8], got {list(shape)}")
    if dtype is not None and _np_dtype(x) != dtype:
        raise ValueError(f"{name} must be {dtype}, got {_np_dtype(x)}")
    return shape


def _check_table(name: str, table: Any, lead: tuple[int, ...]) -> None:
    """A quantization table is integer ``[8, 8]`` or ``[*lead, 8, 8]`` with entries >= 1."""
    shape = _shape(table)
    if shape != (8, 8) and shape != (*lead, 8, 8):
        raise ValueError(
            f"{name} must have shape [8, 8] or {[*lead, 8, 8]} (one per image), got {list(shape)}"
        )
    if not np.issubdtype(_np_dtype(table), np.integer):
        raise ValueError(f"{name} must have an integer dtype, got {_np_dtype(table)}")
    if _kind(table) != "cuda":
        values = _host(table)
        if values.size and (values.min() < 1 or values.max() > 65535):
            raise ValueError(f"{name} entries must be in 1..65535")


def _host_table(table: Any, lead: tuple[int, ...], flat: bool = True) -> np.ndarray:
    """A table as contiguous int64 ``[T, 64]`` (``flat``) or ``[T, 8, 8]``, ``T`` = 1 or batch."""
    values = np.asarray(_host(table), dtype=np.int64)
    values = values.reshape(-1, 64) if flat else values.reshape(-1, 8, 8)
    if values.shape[0] == 0:  # an empty batch: keep one dummy table so kernels index safely
        values = np.ones((1, 64) if flat else (1, 8, 8), np.int64)
    return np.ascontiguousarray(values)


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= int(n) <= 64:
        raise ValueError(f"n (number of zigzag frequencies kept) must be an int in 1..64, got {n!r}")
    return int(n)


def _check_factor(name: str, factor: Any, allowed: tuple[int, ...] | None = None) -> tuple[int, int]:
    try:
        fy, fx = factor
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (fy, fx), got {factor!r}") from None
    for f in (fy, fx):
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f < 1:
            raise ValueError(f"{name} entries must be ints >= 1, got {factor!r}")
        if allowed is not None and f not in allowed:
            raise ValueError(f"{name} entries must be in {allowed}, got {factor!r}")
    return int(fy), int(fx)


def _check_norm(mean: Any, std: Any, n: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """float32 ``[n]`` mean and std (defaults 0 and 1) and whether to normalise at all."""
    if mean is None and std is None:
        return np.zeros(n, np.float32), np.ones(n, np.float32), False
    arrays = []
    for name, value, default in (("mean", mean, 0.0), ("std", std, 1.0)):
        if value is None:
            arrays.append(np.full(n, default, np.float32))
            continue
        array = np.asarray(_host(value), dtype=np.float32)
        if array.shape != (n,):
            raise ValueError(f"{name} must have shape [{n}] (one value per kept frequency), got {list(array.shape)}")
        arrays.append(np.ascontiguousarray(array))
    if np.any(arrays[1] == 0) or not np.all(np.isfinite(arrays[1])):
        raise ValueError("std entries must be finite and non-zero")
    return arrays[0], arrays[1], True


def _check_region(shape: tuple, top: int, left: int, height: int, width: int) -> None:
    bh, bw = shape[-4], shape[-3]
    for name, value in (("top", top), ("left", left), ("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"crop {name} must be an int (in blocks), got {value!r}")
    if top < 0 or left < 0 or height < 1 or width < 1 or top + height > bh or left + width > bw:
        raise ValueError(
            f"crop region rows {top}..{top + height - 1}, columns {left}..{left + width - 1} "
            f"(blocks) is not inside the {bh}x{bw} block grid"
        )


# --------------------------------------------------------------------------------------------
# public API


def dequantize_select(
    coefficients: Array,
    quant_table: Array,
    n: int,
    *,
    upsample: tuple[int, int] = (1, 1),
    mean: Array | None = None,
    std: Array | None = None,
    out: Array | None = None,
) -> Array:
    """Dequantize, keep the ``n`` lowest zigzag frequencies, and lay blocks out as channels.

    This is the step from JPEG coefficients to network input: int16 ``[..., bh, bw, 8, 8]``
    becomes float32 ``[..., n, bh * fy, bw * fx]``, channel ``k`` holding coefficient
    ``ZIGZAG[k]`` of every block times its quantization table entry (frequency band selection,
    dos Santos et al. ICIP 2020). ``upsample=(fy, fx)`` repeats each block position to put a
    subsampled chroma component on the luma grid ((2, 2) for 4:2:0). With ``mean``/``std``
    (float32 ``[n]``; either may be omitted) the output is ``(value - mean[k]) / std[k]``.
    ``quant_table`` is ``[8, 8]`` or one table per image ``[..., 8, 8]``. ``out`` may be a
    preallocated float32 array or tensor of the output shape, for instance a channel slice of a
    merged ``[3n, H, W]`` tensor; it is filled and returned.
    """
    shape = _check_blocks("coefficients", coefficients)
    lead, (bh, bw) = shape[:-4], shape[-4:-2]
    _check_table("quant_table", quant_table, lead)
    n = _check_n(n)
    fy, fx = _check_factor("upsample", upsample)
    mean_, std_, normalize = _check_norm(mean, std, n)
    expected = (*lead, n, bh * fy, bw * fx)
    kind = _kind(coefficients)
    if out is not None:
        if _shape(out) != expected:
            raise ValueError(f"out must have shape {list(expected)}, got {list(_shape(out))}")
        if _np_dtype(out) != np.float32:
            raise ValueError(f"out must be float32, got {_np_dtype(out)}")
        if (_kind(out) == "cuda") != (kind == "cuda"):
            raise ValueError("out must be on the same device as coefficients")
        if kind == "cuda" and _is_torch(out) != _is_torch(coefficients):
            raise ValueError("out must be the same kind of array as coefficients (torch tensor or Numba device array)")
    if kind == "cuda":
        from . import _device

        return _device.dequantize_select(coefficients, quant_table, n, fy, fx, mean_, std_, normalize, out)

    batch = math.prod(lead)
    coef = np.ascontiguousarray(_host(coefficients)).reshape(batch, bh, bw, 64)
    table = _host_table(quant_table, lead)
    zz = _ZIGZAG[:n]
    if out is None:
        result = np.empty(expected, np.float32)
        target = result
    else:
        target = _host(out)
        if not target.flags.writeable:
            raise ValueError("out is read-only")
        result = out
    view = _collapse(target, len(lead))
    if view is not None:
        cpu.dequantize_select(coef, table, zz, fy, fx, mean_, std_, normalize, view)
    else:  # leading axes of `out` cannot merge without a copy: one image at a time
        for b, index in enumerate(np.ndindex(*lead)):
            t = table[b : b + 1] if table.shape[0] > 1 else table
            cpu.dequantize_select(coef[b : b + 1], t, zz, fy, fx, mean_, std_, normalize, target[index][None])
    return _wrap(result, kind) if out is None else result


def hflip(coefficients: Array) -> Array:
    """Horizontal flip of block-aligned images in the DCT domain (a new array).

    Reverses the block-column axis and negates the coefficients with odd horizontal frequency
    (the last axis), which equals flipping the decoded pixels of a block-aligned image. Used as
    a flip augmentation without decoding; flipping twice is the identity.
    """
    shape = _check_blocks("coefficients", coefficients)
    kind = _kind(coefficients)
    if kind == "cuda":
        from . import _device

        return _device.hflip(coefficients)
    coef = np.ascontiguousarray(_host(coefficients)).reshape(-1, *shape[-4:])
    return _wrap(cpu.hflip(coef).reshape(shape), kind)


def crop(coefficients: Array, top: int, left: int, height: int, width: int) -> Array:
    """Blocks ``[top:top + height, left:left + width]`` (block units) as a new contiguous array.

    A block-aligned crop in the DCT domain, exact because blocks are coded independently (DC
    prediction is undone by the time coefficients reach here). Raises ValueError unless the
    region lies inside the block grid.
    """
    shape = _check_blocks("coefficients", coefficients, dtype=None)
    _check_region(shape, top, left, height, width)
    kind = _kind(coefficients)
    if kind == "cuda":
        from . import _device

        return _device.crop(coefficients, int(top), int(left), int(height), int(width))
    return _wrap(cpu.crop(_host(coefficients), int(top), int(left), int(height), int(width)), kind)


def requantize(coefficients: Array, table_from: Array, table_to: Array) -> Array:
    """Change the quantization of coefficients from ``table_from`` to ``table_to`` (int16).

    ``value = c * table_from`` exactly, then libjpeg's quantizer rounding (jcdctmgr.c): half away
    from zero, ``sign(value) * ((|value| + table_to // 2) // table_to)``, clamped to int16. It
    approximates decoding and re-encoding at another quality without pixel rounding or
    clipping. Tables are ``[8, 8]`` or one per image ``[..., 8, 8]``.
    """
    shape = _check_blocks("coefficients", coefficients)
    lead = shape[:-4]
    _check_table("table_from", table_from, lead)
    _check_table("table_to", table_to, lead)
    kind = _kind(coefficients)
    if kind == "cuda":
        from . import _device

        return _device.requantize(coefficients, table_from, table_to)
    coef = np.ascontiguousarray(_host(coefficients)).reshape(math.prod(lead), *shape[-4:-2], 64)
    result = cpu.requantize(coef, _host_table(table_from, lead), _host_table(table_to, lead))
    return _wrap(result.reshape(shape), kind)


def _dct(blocks: Array, inverse: bool) -> Array:
    shape = _shape(blocks)
    name = "idct_8x8" if inverse else "fdct_8x8"
    if len(shape) < 2 or shape[-2:] != (8, 8):
        raise ValueError(f"{name} takes [..., 8, 8] blocks, got shape {list(shape)}")
    if _np_dtype(blocks) != np.float32:
        raise ValueError(f"{name} takes float32 blocks, got {_np_dtype(blocks)}")
    kind = _kind(blocks)
    if kind == "cuda":
        from . import _device

        return _device.dct(blocks, inverse)
    flat = np.ascontiguousarray(_host(blocks)).reshape(-1, 8, 8)
    result = cpu.idct_8x8(flat) if inverse else cpu.fdct_8x8(flat)
    return _wrap(result.reshape(shape), kind)


def idct_8x8(blocks: Array) -> Array:
    """Orthonormal 2-D inverse DCT of float32 ``[..., 8, 8]`` blocks (ITU-T T.81 A.3.3).

    ``samples - 128 = idct_8x8(coefficients * quant_table)``. Computed in float64, returned as
    float32.
    """
    return _dct(blocks, inverse=True)


def fdct_8x8(blocks: Array) -> Array:
    """Orthonormal 2-D forward DCT of float32 ``[..., 8, 8]`` blocks (ITU-T T.81 A.3.3).

    The inverse of :func:`idct_8x8`: the DC coefficient of a constant block of value ``a`` is
    ``8 a``.
    """
    return _dct(blocks, inverse=False)


def samples_from_blocks(coefficients: Array, quant_table: Array) -> Array:
    """Decode quantized blocks ``[..., bh, bw, 8, 8]`` to a uint8 plane ``[..., bh * 8, bw * 8]``.

    Dequantize, inverse DCT, add 128, round half up and clamp to 0..255 as libjpeg does after its
    IDCT; blocks are laid out in raster order. This decodes one component without jpeglib (it
    differs from libjpeg's integer IDCT by at most about one grey level on a few samples).
    """
    shape = _check_blocks("coefficients", coefficients)
    lead, (bh, bw) = shape[:-4], shape[-4:-2]
    _check_table("quant_table", quant_table, lead)
    kind = _kind(coefficients)
    if kind == "cuda":
        from . import _device

        return _device.samples_from_blocks(coefficients, quant_table)
    coef = np.ascontiguousarray(_host(coefficients)).reshape(math.prod(lead), bh, bw, 8, 8)
    result = cpu.samples_from_blocks(coef, _host_table(quant_table, lead, flat=False))
    return _wrap(result.reshape(*lead, bh * 8, bw * 8), kind)


def blocks_from_samples(plane: Array, quant_table: Array) -> Array:
    """Encode a uint8 plane ``[..., H, W]`` to quantized int16 blocks ``[..., ceil(H/8), ceil(W/8), 8, 8]``.

    The inverse of :func:`samples_from_blocks`: subtract 128, forward DCT, quantize with libjpeg's
    rounding (half away from zero). A plane that is not whole blocks is first padded by
    replicating its last row and column, as libjpeg's encoder pads (jcprepct.c).
    """
    shape = _shape(plane)
    if len(shape) < 2 or min(shape[-2:]) < 1:
        raise ValueError(f"plane must have shape [..., H, W] with H, W >= 1, got {list(shape)}")
    if _np_dtype(plane) != np.uint8:
        raise ValueError(f"plane must be uint8, got {_np_dtype(plane)}")
    lead, (h, w) = shape[:-2], shape[-2:]
    _check_table("quant_table", quant_table, lead)
    kind = _kind(plane)
    if kind == "cuda":
        from . import _device

        return _device.blocks_from_samples(plane, quant_table)
    hp, wp = -(-h // 8) * 8, -(-w // 8) * 8
    samples = _host(plane).reshape(math.prod(lead), h, w)
    if (hp, wp) != (h, w):
        samples = np.pad(samples, ((0, 0), (0, hp - h), (0, wp - w)), mode="edge")
    samples = np.ascontiguousarray(samples)
    result = cpu.blocks_from_samples(samples, _host_table(quant_table, lead, flat=False))
    return _wrap(result.reshape(*lead, hp // 8, wp // 8, 8, 8), kind)


def upsample_plane(
    plane: Array, factor: tuple[int, int], out_shape: tuple[int, int], method: str = "fancy"
) -> Array:
    """Upsample a uint8 chroma plane ``[h, w]`` by ``factor = (fy, fx)`` to uint8 ``out_shape``.

    ``out_shape = (H, W)`` is the size of the image (the luma plane); ``plane`` may be the whole
    block-padded component, of which only the first ``ceil(H / fy)`` rows and ``ceil(W / fx)``
    columns are used: libjpeg's ``downsampled_height`` / ``downsampled_width``. Passing the true
    image size makes the edges match libjpeg exactly (its filter replicates the last real
    sample, not the block padding); passing a block-padded ``out_shape`` also works but then
    treats padding as image content. The caller crops nothing afterwards in the first case.

    ``method="fancy"`` is libjpeg-turbo's jdsample.c triangle filter, bit-exact:
    ``h2v1_fancy_upsample`` for (1, 2), ``h2v2_fancy_upsample`` for (2, 2) and
    ``h1v2_fancy_upsample`` (libjpeg-turbo >= 2.1) for (2, 1), including their alternating
    rounding biases and edge replication; like libjpeg it falls back to pixel repetition for a
    horizontal factor 2 when the component is at most 2 samples wide. ``"nearest"`` repeats
    samples. Factor (1, 1) crops to ``out_shape``.
    """
    fy, fx = _check_factor("factor", factor, allowed=(1, 2))
    if method not in ("fancy", "nearest"):
        raise ValueError(f"method must be 'fancy' or 'nearest', got {method!r}")
    shape = _shape(plane)
    if len(shape) != 2:
        raise ValueError(f"plane must be 2-D [h, w], got shape {list(shape)}")
    if _np_dtype(plane) != np.uint8:
        raise ValueError(f"plane must be uint8, got {_np_dtype(plane)}")
    try:
        height, width = (int(s) for s in out_shape)
    except (TypeError, ValueError):
        raise ValueError(f"out_shape must be a pair (H, W), got {out_shape!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"out_shape must be positive, got {out_shape!r}")
    need = (-(-height // fy), -(-width // fx))
    if shape[0] < need[0] or shape[1] < need[1]:
        raise ValueError(
            f"plane {list(shape)} is too small for out_shape {[height, width]} at factor "
            f"{(fy, fx)}: needs at least {list(need)}"
        )
    kind = _kind(plane)
    if kind == "cuda":
        from . import _device

        return _device.upsample_plane(plane, fy, fx, height, width, method == "fancy")
    result = cpu.upsample_plane(np.ascontiguousarray(_host(plane)), fy, fx, height, width, method == "fancy")
    return _wrap(result, kind)


def ycbcr_to_rgb(y: Array, cb: Array, cr: Array) -> Array:
    """JFIF YCbCr planes (uint8 ``[..., H, W]``, all full size) to RGB uint8 ``[..., H, W, 3]``.

    Bit-exact with libjpeg's jdcolor.c (16-bit fixed point, its rounding, clamped to 0..255):
    ``R = Y + 1.402 (Cr - 128)``, ``G = Y - 0.34414 (Cb - 128) - 0.71414 (Cr - 128)``,
    ``B = Y + 1.772 (Cb - 128)``.
    """
    shape = _shape(y)
    if len(shape) < 2:
        raise ValueError(f"y must have shape [..., H, W], got {list(shape)}")
    for name, plane in (("y", y), ("cb", cb), ("cr", cr)):
        if _shape(plane) != shape:
            raise ValueError(f"{name} has shape {list(_shape(plane))}, expected {list(shape)} like y")
        if _np_dtype(plane) != np.uint8:
            raise ValueError(f"{name} must be uint8, got {_np_dtype(plane)}")
    kind = _kind(y)
    if kind == "cuda":
        from . import _device

        return _device.ycbcr_to_rgb(y, cb, cr)
    planes = [np.ascontiguousarray(_host(p)).reshape(-1, *shape[-2:]) for p in (y, cb, cr)]
    return _wrap(cpu.ycbcr_to_rgb(*planes).reshape(*shape, 3), kind)


def rgb_to_ycbcr(rgb: Array) -> Array:
    """RGB uint8 ``[..., H, W, 3]`` to planar JFIF YCbCr uint8 ``[..., 3, H, W]``.

    Bit-exact with libjpeg's jccolor.c, so the planes are what a libjpeg encoder would
    transform; uint8 (not float) for that reason. Planar because planes are what
    :func:`blocks_from_samples` and :func:`upsample_plane` take.
    """
    shape = _shape(rgb)
    if len(shape) < 3 or shape[-1] != 3:
        raise ValueError(f"rgb must have shape [..., H, W, 3], got {list(shape)}")
    if _np_dtype(rgb) != np.uint8:
        raise ValueError(f"rgb must be uint8, got {_np_dtype(rgb)}")
    kind = _kind(rgb)
    if kind == "cuda":
        from . import _device

        return _device.rgb_to_ycbcr(rgb)
    flat = np.ascontiguousarray(_host(rgb)).reshape(-1, *shape[-3:])
    return _wrap(cpu.rgb_to_ycbcr(flat).reshape(*shape[:-3], 3, *shape[-3:-1]), kind)
