"""In-memory encoding against libjpeg's encoder, and the DCT-domain quality change."""

from __future__ import annotations

import numpy as np
import pytest

from cdomain import read_coefficients
from cdomain.jpeg.encode import encode_pixels, reencode, requantize_image, write_coefficients, write_jpeg
from tests.helpers import encode, photo_like, psnr


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:2", "4:2:0", "gray"])
@pytest.mark.parametrize("size", [(1, 1), (17, 33), (37, 45), (64, 64)])
@pytest.mark.parametrize("quality", [5, 50, 90])
def test_encode_pixels_matches_libjpeg(tmp_path, subsampling, size, quality):
    pixels = photo_like(*size, seed=quality)
    if subsampling == "gray":
        pixels, subsampling = pixels[..., 0], "4:2:0"
    write_jpeg(pixels, tmp_path / "ref.jpg", quality, subsampling)
    reference = read_coefficients(tmp_path / "ref.jpg")
    ours = encode_pixels(pixels, quality, subsampling)
    assert ours.sampling == reference.sampling
    assert len(ours.coefficients) == len(reference.coefficients) == len(reference.quant_tables) >= 1
    assert all(np.array_equal(a, b) for a, b in zip(ours.quant_tables, reference.quant_tables))
    differences = [np.abs(a.astype(np.int32) - b) for a, b in zip(ours.coefficients, reference.coefficients)]
    assert all(a.shape == b.shape for a, b in zip(ours.coefficients, reference.coefficients))
    # Only libjpeg's integer forward DCT rounds differently from the float one: off by one, rarely.
    assert max(int(d.max()) for d in differences) <= 1
    mismatched = sum(int((d > 0).sum()) for d in differences) / sum(d.size for d in differences)
    assert mismatched < 0.02


def test_reencode_lowers_quality_and_keeps_content():
    image = read_coefficients(encode(photo_like(64, 80), 90))
    low = reencode(image, 20)
    assert low.quality() == 20 and low.subsampling == image.subsampling
    assert 25 < psnr(low.to_rgb(), image.to_rgb()) < psnr(reencode(image, 70).to_rgb(), image.to_rgb())


def test_requantize_image_is_close_to_reencoding_and_written_losslessly(tmp_path):
    image = read_coefficients(encode(photo_like(64, 64), 95))
    direct = requantize_image(image, 30)
    assert direct.quality() == 30
    via_pixels = reencode(image, 30)
    gap = np.mean([np.abs(a.astype(np.int32) - b).mean() for a, b in zip(direct.coefficients, via_pixels.coefficients)])
    print(f"mean |requantized - re-encoded| = {gap:.4f} quantization steps")
    assert gap < 0.05
    path = write_coefficients(direct, tmp_path / "requantized.jpg")
    again = read_coefficients(path)
    assert len(again.coefficients) == len(direct.coefficients) >= 1
    assert all(np.array_equal(a, b) for a, b in zip(direct.coefficients, again.coefficients))

