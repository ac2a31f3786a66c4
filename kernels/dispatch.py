"""Backend choice: which kernels run a call, decided once for every operation.

The backend follows the type of an operation's first array argument and the result has the
same type:

* NumPy arrays -> Numba CPU kernels (through ``_host.py``), NumPy results.
* CPU torch tensors -> the same CPU kernels on a zero-copy ``.numpy()`` view, torch results.
* CUDA torch tensors -> Numba CUDA kernels (through ``_device.py``) via
  ``__cuda_array_interface__``, launched on the tensor's current torch stream with no host
  copy, CUDA tensor results. Numba CUDA device arrays take the same path and give device
  arrays.

:func:`call` is the one place that makes this choice. ``_device.py``, and with it
``numba.cuda``, is imported only when a CUDA array arrives, so nothing here needs a GPU. The
helpers that tell what an argument is without touching its data live here too, since
``checks.py`` needs them as well.
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from . import _host

if TYPE_CHECKING:
    import torch

    Array = Union[np.ndarray, torch.Tensor]
else:
    Array = Any


def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_device_array(x: Any) -> bool:
    # a Numba device array (the simulator's has no __cuda_array_interface__)
    return hasattr(x, "__cuda_array_interface__") or type(x).__name__ == "FakeCUDAArray"


def kind(x: Any) -> str:
    """``"numpy"``, ``"torch"`` (CPU tensor) or ``"cuda"`` (CUDA tensor or device array)."""
    if is_torch(x):
        return "cuda" if x.is_cuda else "torch"
    if _is_device_array(x):
        return "cuda"
    return "numpy"


@functools.lru_cache(maxsize=None)
def _torch_dtype_to_numpy(dtype: Any) -> np.dtype:
    import torch

    return torch.empty(0, dtype=dtype).numpy().dtype


def np_dtype(x: Any) -> np.dtype:
    """The NumPy dtype of an array, tensor or device array, without touching its data."""
    if is_torch(x):
        return _torch_dtype_to_numpy(x.dtype)
    if hasattr(x, "dtype"):
        return np.dtype(x.dtype)
    return np.asarray(x).dtype


def shape_of(x: Any) -> tuple[int, ...]:
    """The shape of an array, tensor, device array or nested sequence."""
    return tuple(int(s) for s in np.shape(x)) if not hasattr(x, "shape") else tuple(x.shape)


def host(x: Any) -> np.ndarray:
    """A NumPy view of a host array or CPU tensor (zero copy for tensors); device data is
    copied to the host."""
    if is_torch(x):
        if x.is_cuda:
            return x.detach().cpu().numpy()
        return x.detach().resolve_conj().resolve_neg().numpy()
    if hasattr(x, "copy_to_host") and not isinstance(x, np.ndarray):
        return x.copy_to_host()
    return np.asarray(x)


def _on_host(x: Any) -> Any:
    """``x`` as the CPU kernels take it: arrays, tensors and device arrays as NumPy arrays,
    anything else (ints, flags, None) unchanged."""
    if type(x) is np.ndarray or x is None or isinstance(x, (bool, int, float)):
        return x
    if isinstance(x, np.ndarray) or is_torch(x) or hasattr(x, "copy_to_host"):
        return host(x)
    return x


def call(op: str, *args: Any) -> Any:
    """Run operation ``op`` on the backend that ``args[0]`` selects.

    ``args`` are already validated. For CUDA data they go unchanged to ``_device.<op>``, which
    returns the caller's array type. Otherwise every array argument becomes a NumPy view for
    ``_host.<op>`` and a NumPy result goes back to torch (zero copy) when ``args[0]`` is a
    tensor.
    """
    backend = kind(args[0])
    if backend == "cuda":
        from . import _device

        return getattr(_device, op)(*args)
    result = getattr(_host, op)(*[_on_host(a) for a in args])
    if backend == "torch":
        import torch

        if isinstance(result, tuple):
            return tuple(torch.from_numpy(part) for part in result)
        return torch.from_numpy(result)
    return result
