"""Coefficients back to pixels, with cdomain's own kernels: the check that decoding is right.

Follows libjpeg's decoder: dequantize, 8x8 inverse DCT, level shift and range limit per
component; chroma upsampled from its real (downsampled) size with libjpeg's "fancy" triangle
filter, which is what Pillow uses; then JFIF YCbCr -> RGB.

:meth:`cdomain.jpeg.image.DCTImage.to_rgb` calls this module, so it depends on
:mod:`cdomain.jpeg.image` for type checking only: importing either module first works, and
the import graph of :mod:`cdomain.jpeg` has no cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cdomain import kernels

if TYPE_CHECKING:
    from cdomain.jpeg.image import DCTImage


def coefficients_to_rgb(image: DCTImage) -> np.ndarray:
    """Decode ``image`` to uint8 RGB ``[height, width, 3]``, or ``[height, width]`` for grayscale."""
    size = (image.height, image.width)
    planes = [kernels.samples_from_blocks(c, q) for c, q in zip(image.coefficients, image.quant_tables)]
    luma = np.ascontiguousarray(planes[0][: image.height, : image.width])
    if image.num_components == 1:
        return luma
    v_max = max(v for v, _ in image.sampling)
    h_max = max(h for _, h in image.sampling)
    chroma = []
    for plane, (v, h) in zip(planes[1:], image.sampling[1:]):
        chroma.append(kernels.upsample_plane(plane, (v_max // v, h_max // h), size, method="fancy"))
    return kernels.ycbcr_to_rgb(luma, chroma[0], chroma[1])
