"""DCT-domain downscaling by 2 or 4: the matrices and the plain NumPy definition (test oracle).

Downscaling by ``f`` turns each ``f x f`` group of 8x8 coefficient blocks into one 8x8 block.
Because the 8x8 DCT is linear and separable, every output block is

    ``out = sum_i sum_j M_i @ (C_ij * q) @ M_j^T``

with ``C_ij`` the quantized input block at row ``i``, column ``j`` of the group, ``q`` the
quantization table and ``M_i`` one precomputed 8x8 matrix per position ``i`` of an input block
inside its group (``f`` matrices, the same for rows and columns). The result is requantized
with the same table. Two choices of ``M_i``:

``"area"`` (default)  ``M_i = D A_i D^T``: inverse DCT, average every ``f`` samples (the box
    filter of an area / ``Image.reduce`` downscale), forward DCT, folded into one matrix
    (Merhav & Bhaskaran 1997, "Fast algorithms for DCT-domain image downsampling"). Up to
    floating point and the final rounding it equals decode -> area downscale -> forward DCT of
    the unclipped samples.
``"lowpass"``  the subband approximation of Dugad & Ahuja 2001 ("A fast scheme for image size
    change in the compressed domain"): keep the ``8/f x 8/f`` lowest frequencies of each block,
    take their ``8/f``-point inverse DCT scaled by ``1/sqrt(f)`` per axis (an ``8/f``-sample
    piece of the output block), and forward-DCT the assembled 8x8 block. An ideal low-pass
    filter rather than a box; ``M_i`` is zero beyond column ``8/f``, so it reads a quarter
    (``f = 2``) or a sixteenth (``f = 4``) of the coefficients.

Edges: a block grid whose height or width is not a multiple of ``f`` is padded by replicating
its last block row / column (whole blocks, not samples). The pixels of the image itself are
unaffected: the padding only fills the part of the last output block that lies past the
downscaled image's edge, which a decoder crops away. Sources: docs/references.md,
"DCT-domain requantization" (its downscaling subsection).
"""

from __future__ import annotations

import numpy as np

from .reference import dct_matrix

FACTORS = (1, 2, 4)
METHODS = ("area", "lowpass")


def _dct_n(n: int) -> np.ndarray:
    """The orthonormal ``n``-point DCT-II matrix ``[k, x]`` (``dct_matrix()`` for ``n = 8``)."""
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    matrix = np.sqrt(2.0 / n) * np.cos((2 * x + 1) * k * np.pi / (2 * n))
    matrix[0] /= np.sqrt(2.0)
    return matrix


def downscale_matrices(factor: int, method: str = "area") -> np.ndarray:
    """float64 ``[factor, 8, 8]``: ``M_i`` for each position ``i`` of a block in its group.

    ``M_i[u, k]`` maps input frequency ``k`` of block ``i`` to output frequency ``u`` along one
    axis (see the module docstring).
    """
    d = dct_matrix()
    n = 8 // factor  # output samples (and, for "lowpass", kept frequencies) per input block
    matrices = np.zeros((factor, 8, 8))
    for i in range(factor):
        if method == "area":
            average = np.zeros((8, 8))  # [output sample p, input sample x] of block i
            for x in range(8):
                average[(8 * i + x) // factor, x] = 1.0 / factor
            matrices[i] = d @ average @ d.T
        else:
            samples = _dct_n(n).T / np.sqrt(factor)  # n low frequencies -> n output samples
            matrices[i, :, :n] = d[:, i * n : (i + 1) * n] @ samples
    # entries that are zero in exact arithmetic come out as ~1e-17: make them exact zeros
    matrices[np.abs(matrices) < 1e-12] = 0.0
    return matrices


def used_frequencies(factor: int, method: str) -> np.ndarray:
    """int64 indices of the input frequencies (per axis) that the matrices read: the columns of
    ``M_i`` that are not all zero. ``"lowpass"`` reads ``0 .. 8/f - 1``; ``"area"`` skips the
    frequencies a box filter cancels exactly (4 for ``f = 2``; 2, 4 and 6 for ``f = 4``)."""
    matrices = downscale_matrices(factor, method)
    return np.flatnonzero(np.abs(matrices).max(axis=(0, 1)) > 0).astype(np.int64)


def downscale_values(
    coefficients: np.ndarray, quant_table: np.ndarray, factor: int, method: str = "area"
) -> np.ndarray:
    """The dequantized float64 output blocks ``[..., ceil(bh/f), ceil(bw/f), 8, 8]``, unrounded."""
    table = np.asarray(quant_table).astype(np.float64)[..., None, None, :, :]
    values = coefficients.astype(np.float64) * table
    *lead, bh, bw, _, _ = values.shape
    oh, ow = -(-bh // factor), -(-bw // factor)
    pad = [(0, 0)] * len(lead) + [(0, oh * factor - bh), (0, ow * factor - bw), (0, 0), (0, 0)]
    values = np.pad(values, pad, mode="edge")  # replicate the last block row / column
    groups = values.reshape(*lead, oh, factor, ow, factor, 8, 8)
    m = downscale_matrices(factor, method)
    return np.einsum("iuk,...aibjkl,jvl->...abuv", m, groups, m)


def downscale_blocks(
    coefficients: np.ndarray, quant_table: np.ndarray, factor: int, method: str = "area"
) -> np.ndarray:
    """Downscale quantized blocks ``[..., bh, bw, 8, 8]`` by ``factor`` (1, 2 or 4).

    Returns int16 ``[..., ceil(bh/f), ceil(bw/f), 8, 8]`` quantized with the same table:
    :func:`downscale_values` divided by the table and rounded half away from zero (libjpeg's
    quantizer), clamped to int16. ``quant_table`` is ``[8, 8]`` or one per image ``[..., 8, 8]``.
    """
    values = downscale_values(coefficients, quant_table, factor, method)
    table = np.asarray(quant_table).astype(np.float64)[..., None, None, :, :]
    quantized = np.sign(values) * np.floor(np.abs(values) / table + 0.5)
    return np.clip(quantized, -32768, 32767).astype(np.int16)
