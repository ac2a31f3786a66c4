"""cdomain: deep learning directly on compressed images.

JPEG files are decoded only as far as their quantized DCT coefficients, which Numba kernels
turn into network inputs; networks train on them without ever decoding to pixels.

The public names load lazily (PEP 562), so ``from cdomain import read_coefficients`` does not
import PyTorch; the loaders do when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "ChannelStats": "cdomain.data.dct_transforms",
    "DCTImage": "cdomain.jpeg.image",
    "DCTLoader": "cdomain.data.loader",
    "JPEGError": "cdomain.jpeg.errors",
    "RGBLoader": "cdomain.data.loader",
    "ZIGZAG": "cdomain.jpeg.tables",
    "embedded_dataset": "cdomain.data.embedded",
    "estimate_quality": "cdomain.jpeg.tables",
    "quality_table": "cdomain.jpeg.tables",
    "read_coefficients": "cdomain.jpeg.reader",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cdomain' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
