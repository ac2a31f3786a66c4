"""DCTImage: a JPEG decoded only as far as its quantized DCT coefficients.

Its methods use :mod:`cdomain.jpeg.tables` (quality estimate) and :mod:`cdomain.jpeg.reconstruct`
(back to pixels); neither imports this module at run time, so the imports are one-way.
``reconstruct`` is imported on the first ``to_rgb`` call rather than with this module: it needs
the Numba kernels (:mod:`cdomain.kernels`), which decoding coefficients does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cdomain.jpeg.tables import estimate_quality


@dataclass(frozen=True, eq=False)
class DCTImage:
    """Quantized DCT coefficients of one JPEG image, with what is needed to interpret them.

    Attributes:
        coefficients: one int16 array ``[blocks_h, blocks_w, 8, 8]`` per component (Y, Cb, Cr or
            Y alone), coefficient ``[..., u, v]`` in natural order: ``u`` vertical and ``v``
            horizontal frequency. Block counts are libjpeg's ``height_in_blocks`` /
            ``width_in_blocks``: ``ceil(ceil(height * v_samp / v_max) / 8)`` and likewise wide.
        quant_tables: the uint16 ``[8, 8]`` quantization table of each component, natural order.
        sampling: ``(vertical, horizontal)`` sampling factor of each component.
        height, width: image size in pixels.
        color_space: ``"YCbCr"`` (three components) or ``"gray"`` (one component).
        progressive: whether the file was progressive.
        source: a name for the image in messages (its path, or ``"<bytes>"``).
    """

    coefficients: tuple[np.ndarray, ...]
    quant_tables: tuple[np.ndarray, ...]
    sampling: tuple[tuple[int, int], ...]
    height: int
    width: int
    color_space: str
    progressive: bool = False
    source: str = "<bytes>"

    @property
    def num_components(self) -> int:
        return len(self.coefficients)

    @property
    def y(self) -> np.ndarray:
        """Luma coefficients ``[blocks_h, blocks_w, 8, 8]``."""
        return self.coefficients[0]

    @property
    def cb(self) -> np.ndarray | None:
        """Blue-difference chroma coefficients, or None for grayscale."""
        return self.coefficients[1] if self.num_components > 1 else None

    @property
    def cr(self) -> np.ndarray | None:
        """Red-difference chroma coefficients, or None for grayscale."""
        return self.coefficients[2] if self.num_components > 2 else None

    @property
    def subsampling(self) -> str:
        """Chroma subsampling as J:a:b notation (``"4:2:0"``, ``"4:4:4"``, ...), or ``"gray"``."""
        if self.num_components == 1:
            return "gray"
        (vy, hy), (vc, hc) = self.sampling[0], self.sampling[1]
        names = {(1, 1): "4:4:4", (1, 2): "4:2:2", (2, 2): "4:2:0", (2, 1): "4:4:0", (1, 4): "4:1:1"}
        return names.get((vy // vc, hy // hc), f"{hy}x{vy},{hc}x{vc}")

    def quality(self) -> int:
        """Estimated IJG quality from the luma (and chroma) quantization tables."""
        chroma = self.quant_tables[1] if self.num_components > 1 else None
        return estimate_quality(self.quant_tables[0], chroma)

    def to_rgb(self) -> np.ndarray:
        """Decode to pixels: uint8 ``[height, width, 3]`` (``[height, width]`` for grayscale).

        Dequantizes, applies the 8x8 inverse DCT, upsamples chroma with libjpeg's "fancy"
        triangle filter and converts JFIF YCbCr to RGB, all with cdomain's own kernels. It is a
        check on the coefficients (it matches libjpeg's decode to within IDCT rounding), not a
        fast decoder.
        """
        from cdomain.jpeg.reconstruct import coefficients_to_rgb

        return coefficients_to_rgb(self)
