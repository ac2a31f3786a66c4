"""DCT-domain crop, pad, flip and channel layout against pixel-domain ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from cdomain import read_coefficients
from cdomain.data.dct_transforms import ChannelStats, crop_blocks, hflip_image, locate_region, to_channels
from cdomain.jpeg.tables import ZIGZAG
from tests.helpers import encode, photo_like, psnr


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:0", "gray"])
def test_flip_twice_is_identity_and_matches_pixel_flip(subsampling):
    pixels = photo_like(48, 64)
    data = encode(pixels[..., 0], 90) if subsampling == "gray" else encode(pixels, 90, subsampling=subsampling)
    image = read_coefficients(data)
    flipped = hflip_image(image)
    twice = hflip_image(flipped)
    assert len(image.coefficients) == len(twice.coefficients) == (1 if subsampling == "gray" else 3)
    assert not np.array_equal(flipped.y, image.y)  # the flip changed something
    assert all(np.array_equal(a, b) for a, b in zip(image.coefficients, twice.coefficients))
    # Block-aligned image: the DCT-domain flip decodes to the mirrored decode (up to IDCT rounding).
    assert psnr(flipped.to_rgb(), image.to_rgb()[:, ::-1]) > 45


def test_crop_matches_pixel_crop():
    image = read_coefficients(encode(photo_like(64, 96), 90, subsampling="4:2:0"))
    cropped = crop_blocks(image, 2, 4, 4, 6)  # luma blocks: 32x48 px at (16, 32)
    assert (cropped.height, cropped.width) == (32, 48)
    assert cropped.cb.shape[:2] == (2, 3)
    reference = image.to_rgb()[16:48, 32:80]
    assert psnr(cropped.to_rgb()[2:-2, 2:-2], reference[2:-2, 2:-2]) > 40  # chroma filter edges aside


def test_unaligned_crop_is_rejected():
    image = read_coefficients(encode(photo_like(64, 64), 90, subsampling="4:2:0"))
    with pytest.raises(ValueError, match="aligned"):
        crop_blocks(image, 1, 0, 4, 4)


def test_small_images_are_padded_or_rejected():
    image = read_coefficients(encode(photo_like(20, 40), 90, subsampling="4:2:0"))
    padded = locate_region(image, (48, 48), None, small="pad")[0]
    assert padded.y.shape[:2] == (6, 6) and padded.cb.shape[:2] == (3, 3)
    assert not padded.y[0].any()  # mid-grey padding rows above the centred image
    with pytest.raises(ValueError, match="smaller than the crop"):
        locate_region(image, (48, 48), None, small="error")[0]


def _block_offsets(full: np.ndarray, part: np.ndarray) -> list[tuple[int, int]]:
    """Every (row, col) block offset at which ``part`` is a window of ``full`` (block grids)."""
    rows, cols = part.shape[:2]
    return [(r, c) for r in range(full.shape[0] - rows + 1) for c in range(full.shape[1] - cols + 1)
            if np.array_equal(full[r : r + rows, c : c + cols], part)]


def test_random_crops_are_mcu_aligned_and_seeded():
    """A 48x48 crop of a 96x96 4:2:0 image is a window of the full image's coefficient blocks that
    starts on a 16 px MCU boundary (an even luma-block offset), with the chroma window at half that
    offset; different seeds reach different MCU offsets."""
    image = read_coefficients(encode(photo_like(96, 96), 90, subsampling="4:2:0"))
    first = locate_region(image, (48, 48), np.random.default_rng(3))[0]
    again = locate_region(image, (48, 48), np.random.default_rng(3))[0]
    assert np.array_equal(first.y, again.y) and np.array_equal(first.cr, again.cr)
    assert first.y.shape[:2] == (6, 6) and first.cb.shape[:2] == (3, 3)
    seen = set()
    for seed in range(24):
        crop = locate_region(image, (48, 48), np.random.default_rng(seed))[0]
        offsets = _block_offsets(image.y, crop.y)
        assert len(offsets) == 1, offsets  # the luma blocks are one window of the full grid
        (top, left), = offsets
        assert top % 2 == 0 and left % 2 == 0, (seed, top, left)  # 16 px MCU boundary
        assert np.array_equal(crop.cb, image.cb[top // 2 : top // 2 + 3, left // 2 : left // 2 + 3])
        assert np.array_equal(crop.cr, image.cr[top // 2 : top // 2 + 3, left // 2 : left // 2 + 3])
        seen.add((top, left))
    assert len({top for top, _ in seen}) > 1 and len({left for _, left in seen}) > 1


def test_merged_layout_values_by_hand():
    image = read_coefficients(encode(photo_like(32, 32), 75, subsampling="4:2:0"))
    merged = to_channels(image, 3, "merged")
    assert merged.shape == (9, 4, 4) and merged.dtype == np.float32
    for k in range(3):
        u, v = divmod(int(ZIGZAG[k]), 8)
        expected_y = image.y[:, :, u, v] * float(image.quant_tables[0][u, v])
        assert np.array_equal(merged[k], expected_y)
        expected_cb = image.cb[:, :, u, v] * float(image.quant_tables[1][u, v])
        assert np.array_equal(merged[3 + k], np.repeat(np.repeat(expected_cb, 2, 0), 2, 1))


def test_split_layout_and_stats():
    image = read_coefficients(encode(photo_like(32, 48), 75, subsampling="4:2:0"))
    y, cbcr = to_channels(image, 4, "split")
    assert y.shape == (4, 4, 6) and cbcr.shape == (8, 2, 3)
    stats = ChannelStats(np.arange(12, dtype=np.float32), np.full(12, 2.0, dtype=np.float32))
    y_norm, cbcr_norm = to_channels(image, 4, "split", stats)
    np.testing.assert_allclose(y_norm, (y - np.arange(4)[:, None, None]) / 2, rtol=1e-6)
    np.testing.assert_allclose(cbcr_norm, (cbcr - np.arange(4, 12)[:, None, None]) / 2, rtol=1e-6)


def test_split_layout_needs_420():
    image = read_coefficients(encode(photo_like(32, 32), 75, subsampling="4:4:4"))
    with pytest.raises(ValueError, match="4:2:0"):
        to_channels(image, 4, "split")
    assert to_channels(image, 4, "merged").shape == (12, 4, 4)


def test_gray_gets_neutral_chroma():
    image = read_coefficients(encode(photo_like(32, 32)[..., 0], 75))
    merged = to_channels(image, 2, "merged")
    assert merged.shape == (6, 4, 4) and not merged[2:].any()
