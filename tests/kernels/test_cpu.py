"""Numba CPU kernels (through the public dispatch) against the NumPy reference.

Random inputs with odd block counts, non-square grids, leading batch axes, per-image tables,
torch CPU tensors and preallocated outputs; plus the argument validation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdomain import kernels
from cdomain.jpeg.tables import quality_table
from cdomain.kernels import cpu, reference

SHAPES = [(1, 1), (3, 5), (7, 2), (4, 4)]  # block grids: odd, non-square, square
LEADS = [(), (2,), (2, 3)]


def random_blocks(rng, lead, grid, scale=40):
    return np.clip(rng.laplace(0, scale, size=(*lead, *grid, 8, 8)), -2048, 2047).astype(np.int16)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.mark.parametrize("grid", SHAPES)
@pytest.mark.parametrize("lead", LEADS)
@pytest.mark.parametrize("upsample", [(1, 1), (2, 2), (1, 2), (3, 1)])
def test_dequantize_select_matches_reference(rng, grid, lead, upsample):
    coefficients = random_blocks(rng, lead, grid)
    table = quality_table(int(rng.integers(10, 95)))
    for n in (1, 10, 64):
        expected = reference.dequantize_select(coefficients, table, n, upsample)
        got = kernels.dequantize_select(coefficients, table, n, upsample=upsample)
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


def test_dequantize_select_parallel_and_serial_agree(rng, monkeypatch):
    coefficients = random_blocks(rng, (3,), (20, 30))
    table = quality_table(60)
    monkeypatch.setattr(cpu, "PARALLEL_MIN_BLOCKS", 1)
    parallel = kernels.dequantize_select(coefficients, table, 20, upsample=(2, 2))
    monkeypatch.setattr(cpu, "PARALLEL", False)
    serial = kernels.dequantize_select(coefficients, table, 20, upsample=(2, 2))
    np.testing.assert_array_equal(parallel, serial)
    np.testing.assert_array_equal(serial, reference.dequantize_select(coefficients, table, 20, (2, 2)))


def test_concurrent_calls_from_threads(rng, monkeypatch):
    # Numba's workqueue layer aborts on concurrent parallel regions; the dispatch must not.
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(cpu, "PARALLEL_MIN_BLOCKS", 1)
    coefficients = random_blocks(rng, (4,), (12, 10))
    table = quality_table(70)
    expected = reference.dequantize_select(coefficients, table, 16, (2, 2))
    with ThreadPoolExecutor(4) as pool:
        def call(_):
            return kernels.dequantize_select(coefficients, table, 16, upsample=(2, 2))

        results = list(pool.map(call, range(16)))
    for result in results:
        np.testing.assert_array_equal(result, expected)


def test_dequantize_select_per_image_tables_and_normalisation(rng):
    coefficients = random_blocks(rng, (2, 3), (3, 5))
    tables = np.stack([quality_table(q) for q in range(20, 26)]).reshape(2, 3, 8, 8)
    mean = rng.normal(0, 10, size=12).astype(np.float32)
    std = rng.uniform(0.5, 30, size=12).astype(np.float32)
    expected = reference.dequantize_select(coefficients, tables, 12, (1, 1), mean, std)
    np.testing.assert_array_equal(kernels.dequantize_select(coefficients, tables, 12, mean=mean, std=std), expected)
    # mean or std alone
    only_std = kernels.dequantize_select(coefficients, tables, 12, std=std)
    zero = np.zeros(12, np.float32)
    np.testing.assert_array_equal(only_std, reference.dequantize_select(coefficients, tables, 12, (1, 1), zero, std))


def test_dequantize_select_into_channel_slice_of_merged_tensor(rng):
    # The loader's use: Y into channels [0, n), upsampled Cb into [n, 2n) of one tensor.
    y = random_blocks(rng, (2,), (4, 6))
    cb = random_blocks(rng, (2,), (2, 3))
    n = 8
    merged = torch.full((2, 2 * n, 4, 6), -1.0)
    out_y = kernels.dequantize_select(torch.from_numpy(y), quality_table(75), n, out=merged[:, :n])
    chroma_table = quality_table(75, chroma=True)
    out_cb = kernels.dequantize_select(cb, chroma_table, n, upsample=(2, 2), out=merged[:, n:].numpy())
    assert isinstance(out_y, torch.Tensor) and isinstance(out_cb, np.ndarray)
    np.testing.assert_array_equal(merged[:, :n].numpy(), reference.dequantize_select(y, quality_table(75), n))
    np.testing.assert_array_equal(
        merged[:, n:].numpy(), reference.dequantize_select(cb, quality_table(75, chroma=True), n, (2, 2))
    )


def test_dequantize_select_out_whose_leading_axes_do_not_merge(rng):
    coefficients = random_blocks(rng, (2, 3), (2, 2))
    base = np.zeros((3, 2, 5, 2, 2), np.float32)
    out = base.transpose(1, 0, 2, 3, 4)[:, :, 1:4]  # [2, 3, 3, 2, 2], leading axes swapped
    result = kernels.dequantize_select(coefficients, quality_table(50), 3, out=out)
    assert result is out
    np.testing.assert_array_equal(out, reference.dequantize_select(coefficients, quality_table(50), 3))


def test_torch_in_torch_out_zero_copy_input(rng):
    coefficients = torch.from_numpy(random_blocks(rng, (2,), (3, 3)))
    table = torch.from_numpy(quality_table(80).astype(np.int32))
    result = kernels.dequantize_select(coefficients, table, 5)
    assert isinstance(result, torch.Tensor) and result.dtype == torch.float32
    expected = reference.dequantize_select(coefficients.numpy(), quality_table(80), 5)
    np.testing.assert_array_equal(result.numpy(), expected)
    for fn in (kernels.hflip, lambda c: kernels.crop(c, 0, 1, 2, 2), lambda c: kernels.requantize(c, table, table)):
        assert isinstance(fn(coefficients), torch.Tensor)


@pytest.mark.parametrize("grid", SHAPES)
@pytest.mark.parametrize("lead", LEADS)
def test_block_ops_match_reference(rng, grid, lead):
    coefficients = random_blocks(rng, lead, grid)
    np.testing.assert_array_equal(kernels.hflip(coefficients), reference.hflip(coefficients))
    bh, bw = grid
    region = (bh // 2, bw // 3, bh - bh // 2, bw - bw // 3)
    np.testing.assert_array_equal(kernels.crop(coefficients, *region), reference.crop(coefficients, *region))
    source, target = quality_table(int(rng.integers(50, 100))), quality_table(int(rng.integers(5, 60)))
    np.testing.assert_array_equal(
        kernels.requantize(coefficients, source, target), reference.requantize(coefficients, source, target)
    )


def test_requantize_per_image_tables_and_extremes(rng):
    coefficients = random_blocks(rng, (4,), (2, 3), scale=5000)
    coefficients[0, 0, 0] = 32767
    coefficients[1, 0, 0] = -32768
    source = rng.integers(1, 65536, size=(4, 8, 8))
    target = rng.integers(1, 65536, size=(4, 8, 8))
    target[0] = 1
    np.testing.assert_array_equal(
        kernels.requantize(coefficients, source, target), reference.requantize(coefficients, source, target)
    )


@pytest.mark.parametrize("lead", [(), (5,), (2, 3)])
def test_dct_matches_reference(rng, lead):
    blocks = rng.normal(0, 200, size=(*lead, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(kernels.idct_8x8(blocks), reference.idct_8x8(blocks), atol=2e-4, rtol=1e-6)
    np.testing.assert_allclose(kernels.fdct_8x8(blocks), reference.fdct_8x8(blocks), atol=2e-4, rtol=1e-6)


def test_dct_parallel_path(rng, monkeypatch):
    blocks = rng.normal(0, 200, size=(700, 8, 8)).astype(np.float32)
    monkeypatch.setattr(cpu, "PARALLEL_MIN_BLOCKS", 1)
    np.testing.assert_allclose(kernels.idct_8x8(blocks), reference.idct_8x8(blocks), atol=2e-4)


@pytest.mark.parametrize("grid", SHAPES)
@pytest.mark.parametrize("lead", [(), (3,)])
def test_samples_and_blocks_match_reference(rng, grid, lead):
    coefficients = random_blocks(rng, lead, grid, scale=10)
    table = quality_table(70)
    got = kernels.samples_from_blocks(coefficients, table)
    expected = reference.samples_from_blocks(coefficients, table)
    assert got.shape == (*lead, grid[0] * 8, grid[1] * 8) and got.dtype == np.uint8
    # float sums in another order may move a sample sitting on a rounding half by one level
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert np.mean(got != expected) < 1e-3
    blocks = kernels.blocks_from_samples(got, table)
    reference_blocks = reference.blocks_from_samples(got, table)
    assert np.abs(blocks.astype(int) - reference_blocks).max() <= 1
    assert np.mean(blocks != reference_blocks) < 1e-3


def test_samples_parallel_path(rng, monkeypatch):
    coefficients = random_blocks(rng, (2,), (5, 7), scale=10)
    table = quality_table(50)
    monkeypatch.setattr(cpu, "PARALLEL_MIN_BLOCKS", 1)
    parallel = kernels.samples_from_blocks(coefficients, table)
    blocks = kernels.blocks_from_samples(parallel, table)
    monkeypatch.setattr(cpu, "PARALLEL", False)
    np.testing.assert_array_equal(parallel, kernels.samples_from_blocks(coefficients, table))
    np.testing.assert_array_equal(blocks, kernels.blocks_from_samples(parallel, table))


def test_blocks_from_samples_pads_by_edge_replication(rng):
    plane = rng.integers(0, 256, size=(13, 21), dtype=np.uint8)
    padded = np.pad(plane, ((0, 3), (0, 3)), mode="edge")
    table = quality_table(90)
    np.testing.assert_array_equal(kernels.blocks_from_samples(plane, table), kernels.blocks_from_samples(padded, table))


@pytest.mark.parametrize("factor", [(1, 1), (1, 2), (2, 1), (2, 2)])
@pytest.mark.parametrize("method", ["fancy", "nearest"])
@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, 5), (8, 8), (15, 22), (16, 17)])
def test_upsample_matches_reference(rng, factor, method, size):
    plane = rng.integers(0, 256, size=(8, 16), dtype=np.uint8)
    height, width = min(size[0] * factor[0], 16), min(size[1] * factor[1], 32)
    height, width = min(height, 8 * factor[0]), min(width, 16 * factor[1])
    got = kernels.upsample_plane(plane, factor, (height, width), method)
    np.testing.assert_array_equal(got, reference.upsample_plane(plane, factor, (height, width), method))
    assert got.shape == (height, width)


@pytest.mark.parametrize("lead", [(), (2,)])
def test_colour_matches_reference(rng, lead):
    y, cb, cr = rng.integers(0, 256, size=(3, *lead, 9, 14), dtype=np.uint8)
    np.testing.assert_array_equal(kernels.ycbcr_to_rgb(y, cb, cr), reference.ycbcr_to_rgb(y, cb, cr))
    rgb = rng.integers(0, 256, size=(*lead, 9, 14, 3), dtype=np.uint8)
    got = kernels.rgb_to_ycbcr(rgb)
    assert got.shape == (*lead, 3, 9, 14)
    np.testing.assert_array_equal(got, reference.rgb_to_ycbcr(rgb))


def test_colour_exhaustive_chroma_grid():
    # every (Cb, Cr) pair at three luma levels
    cb, cr = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    for level in (0, 128, 255):
        y = np.full_like(cb, level)
        np.testing.assert_array_equal(kernels.ycbcr_to_rgb(y, cb, cr), reference.ycbcr_to_rgb(y, cb, cr))


def test_compiled_constants_match_reference():
    # Kernels compile in constants defined in their own file (Numba's on-disk cache does not
    # see changes in other files); they must equal the reference's.
    from cdomain.kernels import cuda

    assert cpu._DCT.tobytes() == reference.dct_matrix_scaled().tobytes()
    fix = reference.fix
    for module in (cpu, cuda):
        assert module._SCALEBITS == reference.SCALEBITS
        assert module._ONE_HALF == reference.ONE_HALF
        assert module._CBCR_OFFSET == (128 << reference.SCALEBITS) + reference.ONE_HALF - 1
    assert cpu._FIX_Y == (cuda._FY0, cuda._FY1, cuda._FY2) == (fix(0.29900), fix(0.58700), fix(0.11400))
    assert cpu._FIX_CB == (cuda._FB0, cuda._FB1, cuda._FB2) == (-fix(0.16874), -fix(0.33126), fix(0.50000))
    assert cpu._FIX_CR == (cuda._FR0, cuda._FR1, cuda._FR2) == (fix(0.50000), -fix(0.41869), -fix(0.08131))


def test_serial_and_parallel_compilations_are_cached_apart():
    # Numba's cache key leaves out parallel=True: the two compilations need their own names.
    for kernel in (cpu._dequantize, cpu._dequantize_flat, cpu._dct, cpu._samples, cpu._blocks):
        assert kernel.serial.py_func.__code__ is kernel.parallel.py_func.__code__
        assert kernel.serial.py_func.__qualname__ != kernel.parallel.py_func.__qualname__
        assert kernel.parallel.targetoptions.get("parallel") and not kernel.serial.targetoptions.get("parallel")


def test_table_check_follows_the_table_content(rng):
    # Checked tables are cached by content: changing a table in place is seen on the next call.
    coefficients = random_blocks(rng, (), (2, 3))
    table = quality_table(50).astype(np.int32)
    first = kernels.dequantize_select(coefficients, table, 4)
    np.testing.assert_array_equal(first, reference.dequantize_select(coefficients, table, 4))
    table[0, 0] = 0
    with pytest.raises(ValueError, match="quant_table entries must be in 1..65535"):
        kernels.dequantize_select(coefficients, table, 4)
    table[0, 0] = 3
    np.testing.assert_array_equal(
        kernels.dequantize_select(coefficients, table, 4), reference.dequantize_select(coefficients, table, 4)
    )
    np.testing.assert_array_equal(
        kernels.dequantize_select(coefficients, torch.from_numpy(table), 4),
        kernels.dequantize_select(coefficients, table.astype(np.int64), 4),
    )
    with pytest.raises(ValueError, match="table_from"):
        kernels.requantize(coefficients, np.full((8, 8), 65536), table)


# --------------------------------------------------------------------------------------------
# validation


def test_dequantize_select_validation(rng):
    coefficients = random_blocks(rng, (), (2, 2))
    table = quality_table(50)
    with pytest.raises(ValueError, match="n"):
        kernels.dequantize_select(coefficients, table, 0)
    with pytest.raises(ValueError, match="n"):
        kernels.dequantize_select(coefficients, table, 65)
    with pytest.raises(ValueError, match="int16"):
        kernels.dequantize_select(coefficients.astype(np.int32), table, 4)
    with pytest.raises(ValueError, match="shape"):
        kernels.dequantize_select(coefficients[..., :4], table, 4)
    with pytest.raises(ValueError, match="quant_table"):
        kernels.dequantize_select(coefficients, table[:4], 4)
    with pytest.raises(ValueError, match="integer"):
        kernels.dequantize_select(coefficients, table.astype(np.float32), 4)
    with pytest.raises(ValueError, match="1..65535"):
        kernels.dequantize_select(coefficients, np.zeros((8, 8), np.int32), 4)
    with pytest.raises(ValueError, match="upsample"):
        kernels.dequantize_select(coefficients, table, 4, upsample=(0, 1))
    with pytest.raises(ValueError, match="mean"):
        kernels.dequantize_select(coefficients, table, 4, mean=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="std"):
        kernels.dequantize_select(coefficients, table, 4, std=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="out must have shape"):
        kernels.dequantize_select(coefficients, table, 4, out=np.zeros((4, 2, 3), np.float32))
    with pytest.raises(ValueError, match="float32"):
        kernels.dequantize_select(coefficients, table, 4, out=np.zeros((4, 2, 2), np.float64))
    read_only = np.zeros((4, 2, 2), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        kernels.dequantize_select(coefficients, table, 4, out=read_only)
    with pytest.raises(ValueError, match=r"\[8, 8\] or \[3, 8, 8\]"):
        kernels.dequantize_select(random_blocks(rng, (3,), (2, 2)), np.ones((2, 8, 8), np.int32), 4)


def test_other_validation(rng):
    coefficients = random_blocks(rng, (), (3, 4))
    with pytest.raises(ValueError, match="not inside"):
        kernels.crop(coefficients, 1, 0, 3, 4)
    with pytest.raises(ValueError, match="not inside"):
        kernels.crop(coefficients, -1, 0, 1, 1)
    with pytest.raises(ValueError, match="not inside"):
        kernels.crop(coefficients, 0, 0, 0, 1)
    with pytest.raises(ValueError, match="table_to"):
        kernels.requantize(coefficients, quality_table(50), np.zeros((8, 8), np.int32))
    with pytest.raises(ValueError, match="float32"):
        kernels.idct_8x8(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="8, 8"):
        kernels.fdct_8x8(np.zeros((8, 4), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        kernels.blocks_from_samples(np.zeros((8, 8), np.int16), quality_table(50))
    with pytest.raises(ValueError, match="factor"):
        kernels.upsample_plane(np.zeros((4, 4), np.uint8), (3, 1), (8, 4))
    with pytest.raises(ValueError, match="method"):
        kernels.upsample_plane(np.zeros((4, 4), np.uint8), (2, 2), (8, 8), method="cubic")
    with pytest.raises(ValueError, match="too small"):
        kernels.upsample_plane(np.zeros((4, 4), np.uint8), (2, 2), (9, 8))
    with pytest.raises(ValueError, match="cb has shape"):
        kernels.ycbcr_to_rgb(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="rgb"):
        kernels.rgb_to_ycbcr(np.zeros((4, 4, 4), np.uint8))


def test_importing_kernels_does_not_import_numba_cuda():
    import subprocess
    import sys

    code = "import sys, cdomain.kernels; print('numba.cuda' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
