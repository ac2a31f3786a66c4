"""DCT-domain kernels (installed as ``cdomain.kernels``): the public names, re-exported.

Every public function validates its arguments and picks a backend from the type of its first
array argument; the result has the same type: NumPy arrays and CPU torch tensors run the Numba
CPU kernels, CUDA torch tensors and Numba device arrays the Numba CUDA kernels, on the tensor's
current torch stream with no host copy. Small side arguments (quantization tables,
``mean``/``std``) may be host arrays even when the data is on the GPU. Nothing here needs a GPU,
or imports ``numba.cuda``, until a CUDA array arrives.

Where things are:

* ``ops.py``: the public functions (what each operation computes, in its docstring).
* ``checks.py``: argument checks; ``dispatch.py``: the backend choice, made in one place.
* ``_host.py`` / ``_device.py``: shape preparation for the CPU / CUDA kernels.
* ``cpu.py`` / ``cuda.py``: the Numba kernels.
* ``reference.py``: the plain NumPy definition of every operation, the tests' oracle.
* ``rescale.py`` (with ``rescale_reference.py``, ``rescale_cpu.py``, ``rescale_cuda.py``):
  DCT-domain downscaling by 2 or 4.
"""

from __future__ import annotations

from . import cpu, reference
from .dispatch import Array
from .ops import (
    blocks_from_samples,
    crop,
    dequantize_batch,
    dequantize_select,
    fdct_8x8,
    hflip,
    idct_8x8,
    pack_region,
    requantize,
    rgb_to_ycbcr,
    samples_from_blocks,
    upsample_plane,
    ycbcr_to_rgb,
)
from . import rescale_reference  # noqa: E402  DCT-domain downscaling
from .rescale import downscale_blocks

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
    "pack_region",
    "dequantize_batch",
    "reference",
    "downscale_blocks",
    "rescale_reference",
]
