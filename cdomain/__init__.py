"""cdomain: deep learning directly on compressed images.

JPEG files are decoded only as far as their quantized DCT coefficients, which Numba kernels
turn into network inputs; networks train on them without ever decoding to pixels.
"""

from cdomain.data.dct_transforms import ChannelStats
from cdomain.data.embedded import embedded_dataset
from cdomain.data.loader import DCTLoader, RGBLoader
from cdomain.jpeg.errors import JPEGError
from cdomain.jpeg.image import DCTImage
from cdomain.jpeg.reader import read_coefficients
from cdomain.jpeg.tables import ZIGZAG, estimate_quality, quality_table

__version__ = "0.1.0"

__all__ = [
    "ChannelStats",
    "DCTImage",
    "DCTLoader",
    "JPEGError",
    "RGBLoader",
    "ZIGZAG",
    "embedded_dataset",
    "estimate_quality",
    "quality_table",
    "read_coefficients",
]
