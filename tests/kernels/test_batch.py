"""The batch-path kernels (pack_region, dequantize_batch) against the NumPy reference and
against the per-image kernels they replace (crop + hflip + requantize + dequantize_select)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdomain import kernels
from cdomain.jpeg.tables import ZIGZAG, quality_table
from cdomain.kernels import reference


def blocks(rng, shape, scale=40):
    return np.clip(rng.laplace(0, scale, size=(*shape, 8, 8)), -2048, 2047).astype(np.int16)


@pytest.mark.parametrize("flip", [False, True])
def test_pack_region_matches_crop_flip_select(flip):
    rng = np.random.default_rng(1)
    coefficients = blocks(rng, (5, 7))
    got = kernels.pack_region(coefficients, 1, 2, 3, 4, flip, 10)
    region = coefficients[1:4, 2:6]
    if flip:  # independent of the kernels: mirror the block columns, negate odd horizontal frequency
        region = region[:, ::-1] * np.where(np.arange(8) % 2 == 1, -1, 1).astype(np.int16)
    expected = np.moveaxis(region.reshape(3, 4, 64)[:, :, ZIGZAG[:10]], -1, 0)  # plane k: frequency ZIGZAG[k]
    assert got.dtype == np.int16 and got.shape == (10, 3, 4)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, reference.pack_region(coefficients, 1, 2, 3, 4, flip, 10))


def test_pack_region_rejects_a_region_outside_the_grid():
    with pytest.raises(ValueError, match="not inside"):
        kernels.pack_region(np.zeros((2, 2, 8, 8), np.int16), 1, 0, 2, 2, False, 4)


def _batch(rng, batch=3, bh=4, bw=6, fy=2, fx=2, n=6):
    images = [blocks(rng, (bh, bw)) for _ in range(batch)]
    chroma = [[blocks(rng, (bh // fy, bw // fx)) for _ in range(2)] for _ in range(batch)]
    tables = np.stack([
        np.stack([quality_table(q), quality_table(q, chroma=True), quality_table(q, chroma=True)])
        for q in rng.integers(20, 95, batch)
    ]).astype(np.uint16)
    return images, chroma, tables


def _packed(images, chroma, n):
    def planes(blocks):  # [bh, bw, 8, 8] -> [n, bh, bw]
        return np.moveaxis(blocks.reshape(*blocks.shape[:2], 64)[..., ZIGZAG[:n]], -1, 0)

    luma = np.stack([planes(image) for image in images])
    cbcr = np.stack([np.stack([planes(c) for c in pair]) for pair in chroma])
    return np.ascontiguousarray(luma), np.ascontiguousarray(cbcr)


@pytest.mark.parametrize("requant", [False, True])
@pytest.mark.parametrize("normalise", [False, True])
def test_dequantize_batch_equals_per_image_kernels(requant, normalise):
    rng = np.random.default_rng(2)
    n, batch = 6, 3
    images, chroma, tables = _batch(rng, batch=batch, n=n)
    luma, cbcr = _packed(images, chroma, n)
    targets = None
    if requant:
        targets = np.stack([
            np.stack([quality_table(q), quality_table(q, chroma=True), quality_table(q, chroma=True)])
            for q in (10, 50, 90)
        ]).astype(np.uint16)
    mean = rng.normal(0, 5, 3 * n).astype(np.float32) if normalise else None
    std = rng.uniform(1, 9, 3 * n).astype(np.float32) if normalise else None
    out = np.full((batch, 3 * n, 4, 6), np.nan, np.float32)
    kernels.dequantize_batch(luma, cbcr, tables, targets=targets, upsample=(2, 2), mean=mean, std=std,
                             out_luma=out[:, :n], out_chroma=out[:, n:])
    for b in range(batch):
        for index, coefficients in enumerate([images[b], *chroma[b]]):
            table = tables[b, index]
            if requant:
                coefficients = kernels.requantize(coefficients, table, targets[b, index])
                table = targets[b, index]
            part = slice(index * n, (index + 1) * n)
            expected = kernels.dequantize_select(
                coefficients, table, n, upsample=(1, 1) if index == 0 else (2, 2),
                mean=None if mean is None else mean[part], std=None if std is None else std[part],
            )
            assert np.array_equal(out[b, part], expected)
    ref_luma, ref_chroma = reference.dequantize_batch(luma, cbcr, tables, targets, (2, 2), mean, std)
    assert np.array_equal(out[:, :n], ref_luma) and np.array_equal(out[:, n:], ref_chroma)


def test_dequantize_batch_large_batch_uses_one_parallel_call_and_agrees(monkeypatch):
    rng = np.random.default_rng(3)
    images, chroma, tables = _batch(rng, batch=8, bh=16, bw=16, n=8)
    luma, cbcr = _packed(images, chroma, 8)
    monkeypatch.setattr(kernels.cpu, "PARALLEL_MIN_BLOCKS", 1)
    monkeypatch.setattr(kernels.cpu, "BATCH_PARALLEL", True)
    parallel = kernels.dequantize_batch(luma, cbcr, tables, upsample=(2, 2))
    monkeypatch.setattr(kernels.cpu, "PARALLEL", False)
    serial = kernels.dequantize_batch(luma, cbcr, tables, upsample=(2, 2))
    expected = reference.dequantize_batch(luma, cbcr, tables, None, (2, 2))
    for got in (parallel, serial):
        assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])


def test_dequantize_batch_takes_torch_and_returns_torch():
    rng = np.random.default_rng(4)
    images, chroma, tables = _batch(rng, n=4)
    luma, cbcr = _packed(images, chroma, 4)
    got = kernels.dequantize_batch(torch.from_numpy(luma), torch.from_numpy(cbcr), torch.from_numpy(tables.astype(np.int32)),
                                   upsample=(2, 2))
    assert all(isinstance(part, torch.Tensor) for part in got)
    expected = reference.dequantize_batch(luma, cbcr, tables, None, (2, 2))
    assert np.array_equal(got[0].numpy(), expected[0]) and np.array_equal(got[1].numpy(), expected[1])


def test_dequantize_batch_checks_its_arguments():
    luma = np.zeros((2, 4, 2, 2), np.int16)
    chroma = np.zeros((2, 2, 4, 1, 1), np.int16)
    tables = np.ones((2, 3, 8, 8), np.uint16)
    with pytest.raises(ValueError, match="chroma must have shape"):
        kernels.dequantize_batch(luma, chroma[:, :, :3], tables)
    with pytest.raises(ValueError, match="tables must have shape"):
        kernels.dequantize_batch(luma, chroma, tables[:1])
    with pytest.raises(ValueError, match="entries must be in 1..65535"):
        kernels.dequantize_batch(luma, chroma, np.zeros_like(tables))
    with pytest.raises(ValueError, match="luma must be int16"):
        kernels.dequantize_batch(luma.astype(np.int32), chroma, tables)


def test_dequantize_batch_writes_through_any_channel_slices():
    """Adjacent slices [:, :n], [:, n:] of one tensor take the merged fast path; slices in the
    other order, or of a tensor with spare channels, must give the same values."""
    rng = np.random.default_rng(6)
    images, chroma, tables = _batch(rng, n=5)
    luma, cbcr = _packed(images, chroma, 5)
    mean = rng.normal(0, 5, 15).astype(np.float32)
    std = rng.uniform(1, 9, 15).astype(np.float32)
    expected = reference.dequantize_batch(luma, cbcr, tables, None, (2, 2), mean, std)
    for order, channels in (("luma first", 15), ("chroma first", 15), ("spare channels", 17)):
        out = np.full((3, channels, 4, 6), np.nan, np.float32)
        luma_part, chroma_part = (slice(0, 5), slice(5, 15)) if order != "chroma first" else (slice(10, 15), slice(0, 10))
        kernels.dequantize_batch(luma, cbcr, tables, upsample=(2, 2), mean=mean, std=std,
                                 out_luma=out[:, luma_part], out_chroma=out[:, chroma_part])
        assert np.array_equal(out[:, luma_part], expected[0]), order
        assert np.array_equal(out[:, chroma_part], expected[1]), order
        assert np.isnan(out[:, 15:]).all(), order
