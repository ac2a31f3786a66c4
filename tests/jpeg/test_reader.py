"""read_coefficients against jpeglib (libjpeg) on Pillow-written files of many kinds."""

from __future__ import annotations

import io

import jpeglib
import numpy as np
import pytest

from cdomain import read_coefficients
from cdomain.jpeg.image import DCTImage
from tests.helpers import encode, photo_like

SIZES = [(1, 1), (7, 5), (8, 8), (16, 16), (17, 9), (64, 48), (333, 257)]
SUBSAMPLINGS = ["4:4:4", "4:2:2", "4:2:0"]


def assert_same_as_jpeglib(image: DCTImage, path: str) -> None:
    oracle = jpeglib.read_dct(path)
    planes = [oracle.Y] + ([oracle.Cb, oracle.Cr] if oracle.has_chrominance else [])
    assert image.num_components == len(planes)
    for ours, theirs, table_number, table in zip(
        image.coefficients, planes, oracle.quant_tbl_no, image.quant_tables
    ):
        assert ours.dtype == np.int16 and ours.shape == theirs.shape
        assert np.array_equal(ours, theirs)
        assert np.array_equal(table, oracle.qt[table_number])
    assert (image.height, image.width) == (oracle.height, oracle.width)
    assert image.progressive == oracle.progressive_mode


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("subsampling", SUBSAMPLINGS)
@pytest.mark.parametrize("quality,progressive", [(5, False), (50, True), (75, False), (95, True), (100, False)])
def test_coefficients_identical_to_jpeglib(tmp_path, size, subsampling, quality, progressive):
    path = tmp_path / "image.jpg"
    path.write_bytes(encode(photo_like(*size), quality, subsampling=subsampling, progressive=progressive))
    image = read_coefficients(path)
    assert_same_as_jpeglib(image, str(path))
    assert image.color_space == "YCbCr" and image.subsampling == subsampling


@pytest.mark.parametrize("size", [(1, 1), (31, 45), (64, 64)])
def test_grayscale_has_no_chroma(tmp_path, size):
    path = tmp_path / "gray.jpg"
    path.write_bytes(encode(photo_like(*size)[..., 0], 60))
    image = read_coefficients(path)
    assert_same_as_jpeglib(image, str(path))
    assert image.color_space == "gray" and image.cb is None and image.cr is None
    assert image.y.shape == (-(-size[0] // 8), -(-size[1] // 8), 8, 8)


def test_optimized_huffman_and_restart_intervals(tmp_path):
    path = tmp_path / "opt.jpg"
    jpeglib.from_spatial(photo_like(50, 70)).write_spatial(str(path), qt=80, flags=["+optimize_coding"])
    assert_same_as_jpeglib(read_coefficients(path), str(path))
    path.write_bytes(encode(photo_like(50, 70), 80, restart_marker_blocks=3))
    assert_same_as_jpeglib(read_coefficients(path), str(path))


def test_path_bytes_and_file_object_agree(tmp_path):
    data = encode(photo_like(40, 56), 70)
    path = tmp_path / "same.jpg"
    path.write_bytes(data)
    from_path = read_coefficients(str(path))
    for other in (read_coefficients(data), read_coefficients(io.BytesIO(data)), read_coefficients(path.open("rb"))):
        assert len(from_path.coefficients) == len(other.coefficients) == 3
        assert all(np.array_equal(a, b) for a, b in zip(from_path.coefficients, other.coefficients))
    assert from_path.source == str(path)
    assert read_coefficients(data).source == "<bytes>"


def test_metadata_of_a_420_file():
    image = read_coefficients(encode(photo_like(37, 51), 42, subsampling="4:2:0"))
    assert (image.height, image.width) == (37, 51)
    assert image.sampling == ((2, 2), (1, 1), (1, 1))
    # libjpeg's height_in_blocks: ceil(37 * 1 / (2 * 8)) = 3 for chroma, ceil(37 / 8) = 5 for luma.
    assert image.y.shape[:2] == (5, 7) and image.cb.shape[:2] == (3, 4)
    assert image.quality() == 42


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend"):
        read_coefficients(encode(photo_like(8, 8)), backend="pillow")
