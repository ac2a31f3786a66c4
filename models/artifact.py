"""JPEG artifact correction guided by the quantization tables: a small CPU-sized QGAC stand-in.

QGAC (Ehrlich et al., ECCV 2020, "Quantization Guided JPEG Artifact Correction") corrects colour
JPEGs of any quality with one network: it reads the DCT coefficients and lets the quantization
tables steer the convolutions (its "convolutional filter manifolds"). :class:`ArtifactCorrector`
keeps those three properties at a size that trains on a CPU in minutes; it is *not* QGAC's
architecture (QGAC has about 250M multiply-adds per 8x8 block and separate Y / colour / GAN
stages):

- input: the dequantized coefficients of every frequency in the split layout
  (``y [B, 64, H/8, W/8]``, ``cbcr [B, 128, H/16, W/16]``, 4:2:0) and the three quantization
  tables in zigzag order (``tables [B, 3, 64]``), so it is quality-blind: nothing tells it the
  quality except the tables, which it reads;
- the tables set a per-channel scale and shift of every hidden layer (FiLM, the small form of a
  filter manifold) and the unit of the output: the network predicts each coefficient's
  correction in quantization steps of that coefficient;
- output: corrected coefficients in the same layout; :func:`decode_pixels` turns them into RGB
  pixels (differentiable: orthonormal 8x8 IDCT, nearest chroma upsampling, JFIF YCbCr to RGB), and
  :func:`task_inputs` into the input a task network reads (dct ``merged``/``split`` with its FBS
  size and channel statistics, or rgb).

The last layers start at zero, so an untrained corrector returns its input unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register_model
from .spec import InputSpec

__all__ = ["ArtifactCorrector", "idct_basis", "decode_pixels", "task_inputs"]

#: Natural index of each zigzag position (T.81 Figure A.6); the channel order of the split layout.
_ZIGZAG = (0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7,
           14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46,
           53, 60, 61, 54, 47, 55, 62, 63)


def idct_basis() -> Tensor:
    """``[64, 64]``: row k is the 8x8 pixel pattern (row-major) of zigzag coefficient k.

    JPEG's DCT is the orthonormal 2-D DCT-II, so a block's pixels are ``coefficients @ basis``.
    """
    n = np.arange(8)
    scale = np.where(n == 0, np.sqrt(1 / 8), np.sqrt(2 / 8))
    d = scale[:, None] * np.cos((2 * n[None, :] + 1) * n[:, None] * np.pi / 16)  # d[u, x]
    rows = []
    for natural in _ZIGZAG:
        u, v = divmod(natural, 8)
        rows.append(np.outer(d[u], d[v]).reshape(64))
    return torch.tensor(np.stack(rows), dtype=torch.float32)


def _blocks_to_plane(coefficients: Tensor, basis: Tensor) -> Tensor:
    """``[B, 64, h, w]`` zigzag coefficients -> ``[B, 1, 8h, 8w]`` pixel plane (level-shifted back)."""
    pixels = torch.einsum("bkhw,kp->bphw", coefficients, basis.to(coefficients))
    return F.pixel_shuffle(pixels, 8) + 128.0


def decode_pixels(y: Tensor, cbcr: Tensor, basis: Tensor | None = None) -> Tensor:
    """RGB pixels ``[B, 3, H, W]`` (0..255, float) of split-layout coefficients, differentiably.

    Nearest-neighbour chroma upsampling (libjpeg's ``do_fancy_upsampling = FALSE``) and the JFIF
    YCbCr -> RGB matrix; values are clamped to 0..255 as a decoder does.
    """
    basis = idct_basis() if basis is None else basis
    luma = _blocks_to_plane(y, basis)
    cb = _blocks_to_plane(cbcr[:, :64], basis) - 128.0
    cr = _blocks_to_plane(cbcr[:, 64:], basis) - 128.0
    cb = F.interpolate(cb, size=luma.shape[-2:], mode="nearest")
    cr = F.interpolate(cr, size=luma.shape[-2:], mode="nearest")
    rgb = torch.cat([luma + 1.402 * cr, luma - 0.344136 * cb - 0.714136 * cr, luma + 1.772 * cb], dim=1)
    return rgb.clamp(0.0, 255.0)


def task_inputs(y: Tensor, cbcr: Tensor, spec: InputSpec, stats=None, basis: Tensor | None = None) -> tuple[Tensor, ...]:
    """What a task network that declares ``spec`` reads, made from split-layout coefficients.

    dct ``split``: the ``fbs`` lowest zigzag channels per component; dct ``merged``: the same with
    chroma repeated onto the luma grid (as :func:`cdomain.data.dct_transforms.to_channels` lays it
    out); rgb: :func:`decode_pixels`. ``stats`` (the network's ``ChannelStats``) normalises them.
    """
    if spec.input == "rgb":
        parts = [decode_pixels(y, cbcr, basis)]
    elif spec.input == "dct":
        n = spec.fbs
        luma, cb, cr = y[:, :n], cbcr[:, :n], cbcr[:, 64 : 64 + n]
        if spec.layout == "split":
            parts = [luma, torch.cat([cb, cr], dim=1)]
        else:
            chroma = torch.cat([cb, cr], dim=1).repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
            parts = [torch.cat([luma, chroma], dim=1)]
    else:
        raise ValueError(f"artifact correction feeds dct or rgb networks, not {spec.input} input")
    if stats is None:
        return tuple(parts)
    mean = torch.as_tensor(stats.mean, device=y.device)
    std = torch.as_tensor(stats.std, device=y.device)
    out, offset = [], 0
    for part in parts:
        channels = part.shape[1]
        m, s = mean[offset : offset + channels], std[offset : offset + channels]
        out.append((part - m[None, :, None, None]) / s[None, :, None, None])
        offset += channels
    return tuple(out)


class FiLMBlock(nn.Module):
    """A residual 3x3 block whose hidden features are scaled and shifted by the table embedding."""

    def __init__(self, channels: int, embed: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = nn.Linear(embed, 2 * channels)

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        scale, shift = self.film(embedding)[:, :, None, None].chunk(2, dim=1)
        h = F.relu(self.conv1(x))
        h = h * (1 + scale) + shift
        return x + self.conv2(F.relu(h))


class ArtifactCorrector(nn.Module):
    """Quality-blind colour JPEG artifact correction in the DCT domain (see the module docstring).

    ``forward(y, cbcr, tables)`` returns corrected ``(y, cbcr)``: dequantized coefficients in the
    split layout, all 64 frequencies.
    """

    def __init__(self, width: int = 64, blocks: int = 4, embed: int = 64) -> None:
        super().__init__()
        self.input_spec = InputSpec("dct", "split", 64, (64, 128), (8, 16), task="correction")
        self.width, self.embed = width, embed
        self.tables = nn.Sequential(nn.Linear(3 * 64, embed), nn.ReLU(inplace=True), nn.Linear(embed, embed),
                                    nn.ReLU(inplace=True))
        self.luma_in = nn.Conv2d(64, width, 3, padding=1)
        self.chroma_in = nn.Conv2d(128, width, 3, padding=1)
        self.body = nn.ModuleList(FiLMBlock(width, embed) for _ in range(blocks))
        self.luma_out = nn.Conv2d(width, 64, 3, padding=1)
        self.chroma_out = nn.Conv2d(2 * width, 128, 3, padding=1)
        for head in (self.luma_out, self.chroma_out):  # start as the identity correction
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.register_buffer("basis", idct_basis(), persistent=False)

    def forward(self, y: Tensor, cbcr: Tensor, tables: Tensor) -> tuple[Tensor, Tensor]:
        if y.shape[-2] != 2 * cbcr.shape[-2] or y.shape[-1] != 2 * cbcr.shape[-1]:
            raise ValueError(f"luma {tuple(y.shape[-2:])} and chroma {tuple(cbcr.shape[-2:])} block grids are not "
                             "4:2:0 (an even number of luma blocks per chroma block)")
        steps = tables.clamp(min=1.0)  # [B, 3, 64]: quantization step of every coefficient
        embedding = self.tables(steps.flatten(1) / 255.0)
        luma_steps = steps[:, 0, :, None, None]
        chroma_steps = steps[:, 1:].flatten(1)[:, :, None, None]
        # coefficients in units of their own quantization step: the integers the file stored
        luma = self.luma_in(y / luma_steps)
        chroma = self.chroma_in(cbcr / chroma_steps)
        x = luma + F.interpolate(chroma, scale_factor=2, mode="nearest")
        for block in self.body:
            x = block(x, embedding)
        pooled = F.avg_pool2d(x, 2)
        y_out = y + self.luma_out(F.relu(x)) * luma_steps
        cbcr_out = cbcr + self.chroma_out(torch.cat([F.relu(pooled), F.relu(chroma)], dim=1)) * chroma_steps
        return y_out, cbcr_out

    def pixels(self, y: Tensor, cbcr: Tensor) -> Tensor:
        """RGB pixels 0..255 of (corrected) split-layout coefficients."""
        return decode_pixels(y, cbcr, self.basis)


@register_model
def artifact_corrector(width: int = 64, blocks: int = 4, embed: int = 64) -> ArtifactCorrector:
    """Quantization-table-guided JPEG artifact correction (a small QGAC stand-in)."""
    return ArtifactCorrector(width=width, blocks=blocks, embed=embed)
