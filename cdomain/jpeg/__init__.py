"""JPEG coefficient codec: read quantized DCT coefficients, tables, quality estimate."""

from cdomain.jpeg.errors import JPEGError
from cdomain.jpeg.image import DCTImage
from cdomain.jpeg.reader import read_coefficients

__all__ = ["DCTImage", "JPEGError", "read_coefficients"]
