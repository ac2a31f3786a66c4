"""DCTImage.to_rgb against Pillow's decode (libjpeg-turbo) of the same file: PSNR >= 38 dB."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cdomain import read_coefficients
from tests.helpers import encode, photo_like, psnr

MIN_PSNR_DB = 38.0


@pytest.mark.parametrize("size", [(333, 257), (64, 64), (17, 9), (1, 1)])
@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:2", "4:2:0", "gray"])
@pytest.mark.parametrize("quality", [10, 50, 90, 100])
def test_reconstruction_matches_pillow(size, subsampling, quality):
    image = photo_like(*size, seed=quality)
    if subsampling == "gray":
        data = encode(image[..., 0], quality)
        expected = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    else:
        data = encode(image, quality, subsampling=subsampling)
        expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    ours = read_coefficients(data).to_rgb()
    assert ours.shape == expected.shape and ours.dtype == np.uint8
    value = psnr(ours, expected)
    print(f"{subsampling} q{quality} {size[1]}x{size[0]}: PSNR {value:.1f} dB")
    assert value >= MIN_PSNR_DB


def test_reconstruction_of_progressive_file():
    data = encode(photo_like(120, 90), 85, progressive=True)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert psnr(read_coefficients(data).to_rgb(), expected) >= MIN_PSNR_DB
