"""Kernel throughput: Numba CPU kernels vs the NumPy reference vs idiomatic torch (einops).

Realistic sizes: a batch of 224x224 4:2:0 images (default 64): Y 28x28 blocks, Cb/Cr 14x14
blocks per image. Every kernel is timed after a warm-up (compilation excluded) as the best of
``--repeat`` runs, which is the figure least disturbed by other load on the machine; the median
is printed too. The three implementations of a kernel are timed in turn within each repetition,
so load from other processes falls on all of them alike; the load average is printed. CUDA
kernels are timed only when ``torch.cuda.is_available()``.

    python benchmarks/bench_kernels.py [--batch 64] [--repeat 7] [--only dequantize]

Target (2 CPU cores): the fused dequantize + band selection + layout at least 5x the NumPy
reference and 2x the torch version.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from cdomain import kernels
from cdomain.jpeg.tables import ZIGZAG, quality_table
from cdomain.kernels import reference


def timeit(fn: Callable[[], object], repeat_count: int, sync: Callable[[], None] | None = None) -> tuple[float, float]:
    """(best, median) seconds of ``fn`` over ``repeat_count`` runs after two warm-up calls."""
    return timeit_interleaved([fn], repeat_count, sync)[0]


def timeit_interleaved(
    fns: list[Callable[[], object]], repeat_count: int, sync: Callable[[], None] | None = None
) -> list[tuple[float, float]]:
    """(best, median) seconds of each of ``fns``, run in turn within every repetition so that
    changing load on a shared machine affects all of them alike."""
    for fn in fns:
        fn()
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat_count):
        for fn, samples in zip(fns, times):
            if sync:
                sync()
            start = time.perf_counter()
            fn()
            if sync:
                sync()
            samples.append(time.perf_counter() - start)
    return [(min(samples), statistics.median(samples)) for samples in times]


# --------------------------------------------------------------------------------------------
# idiomatic torch versions, the baseline a user would otherwise write


_ZZ = torch.from_numpy(ZIGZAG.copy())
_DCT = torch.from_numpy(reference.dct_matrix()).float()


def torch_dequantize_select(coef, table, n, upsample=(1, 1)):
    b, bh, bw = coef.shape[:3]
    zz = _ZZ[:n].to(coef.device)
    x = coef.reshape(b, bh, bw, 64)[..., zz].float() * table.reshape(64)[zz].float()
    x = rearrange(x, "b h w k -> b k h w")
    if upsample != (1, 1):
        x = repeat(x, "b k h w -> b k (h fy) (w fx)", fy=upsample[0], fx=upsample[1])
    return x.contiguous()


def torch_hflip(coef):
    sign = torch.tensor([1, -1] * 4, dtype=coef.dtype, device=coef.device)
    return torch.flip(coef, dims=[-3]) * sign


def torch_crop(coef, top, left, height, width):
    return coef[..., top : top + height, left : left + width, :, :].contiguous()


def torch_requantize(coef, table_from, table_to):
    value = coef.long() * table_from.long()
    divisor = table_to.long()
    result = torch.sign(value) * ((value.abs() + divisor // 2) // divisor)
    return result.clamp(-32768, 32767).short()


def torch_idct(blocks):
    d = _DCT.to(blocks.device)
    return d.T @ blocks @ d


def torch_fdct(blocks):
    d = _DCT.to(blocks.device)
    return d @ blocks @ d.T


def torch_samples_from_blocks(coef, table):
    pixels = torch_idct(coef.float() * table.float()) + 128
    pixels = torch.floor(pixels + 0.5).clamp(0, 255).to(torch.uint8)
    return rearrange(pixels, "b h w y x -> b (h y) (w x)")


def torch_blocks_from_samples(plane, table):
    blocks = rearrange(plane.float() - 128, "b (h y) (w x) -> b h w y x", y=8, x=8)
    values = torch_fdct(blocks)
    return (torch.sign(values) * torch.floor(values.abs() / table.float() + 0.5)).short()


def torch_upsample_h2v2(plane):
    """libjpeg's h2v2 fancy upsampling on a batch ``[B, h, w]`` (edge rows/columns replicate)."""
    x = plane.int()
    padded = F.pad(x[:, None].float(), (1, 1, 1, 1), mode="replicate")[:, 0].int()
    up, down, mid = padded[:, :-2, 1:-1], padded[:, 2:, 1:-1], x
    out = torch.empty((x.shape[0], 2 * x.shape[1], 2 * x.shape[2]), dtype=torch.int32, device=x.device)
    for row, other in ((0, up), (1, down)):
        colsum = 3 * mid + other
        cp = F.pad(colsum.float(), (1, 1), mode="replicate").int()
        out[:, row::2, 0::2] = (3 * colsum + cp[:, :, :-2] + 8) >> 4
        out[:, row::2, 1::2] = (3 * colsum + cp[:, :, 2:] + 7) >> 4
    return out.to(torch.uint8)


_CR_R, _CB_B, _CR_G, _CB_G = (torch.from_numpy(t) for t in reference.ycbcr_tables())


def torch_ycbcr_to_rgb(y, cb, cr):
    cb, cr = cb.long(), cr.long()
    luma = y.long()
    red = luma + _CR_R[cr]
    green = luma + ((_CB_G[cb] + _CR_G[cr]) >> 16)
    blue = luma + _CB_B[cb]
    return torch.stack([red, green, blue], dim=-1).clamp(0, 255).to(torch.uint8)


def torch_rgb_to_ycbcr(rgb):
    fix = reference.fix
    r, g, b = rgb.long().unbind(-1)
    offset = (128 << 16) + (1 << 15) - 1
    y = (fix(0.299) * r + fix(0.587) * g + fix(0.114) * b + (1 << 15)) >> 16
    cb = (-fix(0.16874) * r - fix(0.33126) * g + fix(0.5) * b + offset) >> 16
    cr = (fix(0.5) * r - fix(0.41869) * g - fix(0.08131) * b + offset) >> 16
    return torch.stack([y, cb, cr], dim=-3).to(torch.uint8)


# --------------------------------------------------------------------------------------------


def cases(batch: int):
    """(name, MB touched per call, numba fn, numpy fn, torch fn) for each benchmarked kernel."""
    rng = np.random.default_rng(0)
    luma = np.clip(rng.laplace(0, 6, size=(batch, 28, 28, 8, 8)), -1024, 1023).astype(np.int16)
    chroma = np.clip(rng.laplace(0, 3, size=(batch, 14, 14, 8, 8)), -1024, 1023).astype(np.int16)
    q_luma, q_chroma, q_low = quality_table(75), quality_table(75, chroma=True), quality_table(30)
    t_luma, t_chroma = torch.from_numpy(luma), torch.from_numpy(chroma)
    tq_luma, tq_chroma, tq_low = (torch.from_numpy(q.astype(np.int32)) for q in (q_luma, q_chroma, q_low))
    blocks = (rng.normal(0, 50, size=(batch, 28, 28, 8, 8))).astype(np.float32)
    t_blocks = torch.from_numpy(blocks)
    plane = rng.integers(0, 256, size=(batch, 224, 224), dtype=np.uint8)
    t_plane = torch.from_numpy(plane)
    small = rng.integers(0, 256, size=(batch, 112, 112), dtype=np.uint8)
    t_small = torch.from_numpy(small)
    ycc = rng.integers(0, 256, size=(3, batch, 224, 224), dtype=np.uint8)
    t_ycc = torch.from_numpy(ycc)
    rgb = rng.integers(0, 256, size=(batch, 224, 224, 3), dtype=np.uint8)
    t_rgb = torch.from_numpy(rgb)
    mb = 1e-6

    def per_image(fn, planes):
        return lambda: [fn(p) for p in planes]

    yield ("dequantize_select Y n=64", (luma.nbytes + batch * 64 * 28 * 28 * 4) * mb,
           lambda: kernels.dequantize_select(luma, q_luma, 64),
           lambda: reference.dequantize_select(luma, q_luma, 64),
           lambda: torch_dequantize_select(t_luma, tq_luma, 64))
    yield ("dequantize_select Y n=16 (FBS)", (luma.nbytes + batch * 16 * 28 * 28 * 4) * mb,
           lambda: kernels.dequantize_select(luma, q_luma, 16),
           lambda: reference.dequantize_select(luma, q_luma, 16),
           lambda: torch_dequantize_select(t_luma, tq_luma, 16))
    yield ("dequantize_select CbCr n=64", (chroma.nbytes + batch * 64 * 14 * 14 * 4) * mb,
           lambda: kernels.dequantize_select(chroma, q_chroma, 64),
           lambda: reference.dequantize_select(chroma, q_chroma, 64),
           lambda: torch_dequantize_select(t_chroma, tq_chroma, 64))
    yield ("dequantize_select CbCr n=64 up 2x2", (chroma.nbytes + batch * 64 * 28 * 28 * 4) * mb,
           lambda: kernels.dequantize_select(chroma, q_chroma, 64, upsample=(2, 2)),
           lambda: reference.dequantize_select(chroma, q_chroma, 64, (2, 2)),
           lambda: torch_dequantize_select(t_chroma, tq_chroma, 64, (2, 2)))
    yield ("hflip Y", 2 * luma.nbytes * mb,
           lambda: kernels.hflip(luma), lambda: reference.hflip(luma), lambda: torch_hflip(t_luma))
    yield ("crop Y 24x24 of 28x28", 2 * luma.nbytes * (24 * 24) / (28 * 28) * mb,
           lambda: kernels.crop(luma, 2, 2, 24, 24), lambda: reference.crop(luma, 2, 2, 24, 24),
           lambda: torch_crop(t_luma, 2, 2, 24, 24))
    yield ("requantize Y q75 -> q30", 2 * luma.nbytes * mb,
           lambda: kernels.requantize(luma, q_luma, q_low),
           lambda: reference.requantize(luma, q_luma, q_low),
           lambda: torch_requantize(t_luma, tq_luma, tq_low))
    yield ("idct_8x8 Y", 2 * blocks.nbytes * mb,
           lambda: kernels.idct_8x8(blocks), lambda: reference.idct_8x8(blocks), lambda: torch_idct(t_blocks))
    yield ("fdct_8x8 Y", 2 * blocks.nbytes * mb,
           lambda: kernels.fdct_8x8(blocks), lambda: reference.fdct_8x8(blocks), lambda: torch_fdct(t_blocks))
    yield ("samples_from_blocks Y", (luma.nbytes + plane.nbytes) * mb,
           lambda: kernels.samples_from_blocks(luma, q_luma),
           lambda: reference.samples_from_blocks(luma, q_luma),
           lambda: torch_samples_from_blocks(t_luma, tq_luma))
    yield ("blocks_from_samples Y", (luma.nbytes + plane.nbytes) * mb,
           lambda: kernels.blocks_from_samples(plane, q_luma),
           lambda: reference.blocks_from_samples(plane, q_luma),
           lambda: torch_blocks_from_samples(t_plane, tq_luma))
    yield ("upsample_plane fancy 2x2 (per image)", (small.nbytes + plane.nbytes) * mb,
           per_image(lambda p: kernels.upsample_plane(p, (2, 2), (224, 224)), small),
           per_image(lambda p: reference.upsample_plane(p, (2, 2), (224, 224)), small),
           lambda: torch_upsample_h2v2(t_small))
    yield ("ycbcr_to_rgb", 2 * ycc.nbytes * mb,
           lambda: kernels.ycbcr_to_rgb(*ycc), lambda: reference.ycbcr_to_rgb(*ycc),
           lambda: torch_ycbcr_to_rgb(*t_ycc))
    yield ("rgb_to_ycbcr", 2 * rgb.nbytes * mb,
           lambda: kernels.rgb_to_ycbcr(rgb), lambda: reference.rgb_to_ycbcr(rgb),
           lambda: torch_rgb_to_ycbcr(t_rgb))


def run_cuda(batch: int, repeat_count: int) -> None:
    """Time the CUDA kernels through the torch dispatch, against the torch versions on GPU."""
    if not torch.cuda.is_available():
        print("\nCUDA: skipped (torch.cuda.is_available() is False)")
        return
    device = torch.device("cuda")
    rng = np.random.default_rng(0)
    luma = torch.from_numpy(rng.integers(-50, 50, size=(batch, 28, 28, 8, 8)).astype(np.int16)).to(device)
    chroma = torch.from_numpy(rng.integers(-50, 50, size=(batch, 14, 14, 8, 8)).astype(np.int16)).to(device)
    table = torch.from_numpy(quality_table(75).astype(np.int32)).to(device)
    low = torch.from_numpy(quality_table(30).astype(np.int32)).to(device)
    blocks = torch.randn(batch, 28, 28, 8, 8, device=device) * 50
    sync = torch.cuda.synchronize
    rows = [
        ("dequantize_select Y n=64", lambda: kernels.dequantize_select(luma, table, 64),
         lambda: torch_dequantize_select(luma, table, 64)),
        ("dequantize_select CbCr n=64 up 2x2", lambda: kernels.dequantize_select(chroma, table, 64, upsample=(2, 2)),
         lambda: torch_dequantize_select(chroma, table, 64, (2, 2))),
        ("hflip Y", lambda: kernels.hflip(luma), lambda: torch_hflip(luma)),
        ("requantize Y", lambda: kernels.requantize(luma, table, low), lambda: torch_requantize(luma, table, low)),
        ("idct_8x8 Y", lambda: kernels.idct_8x8(blocks), lambda: torch_idct(blocks)),
        ("samples_from_blocks Y", lambda: kernels.samples_from_blocks(luma, table),
         lambda: torch_samples_from_blocks(luma, table)),
    ]
    print(f"\nCUDA ({torch.cuda.get_device_name()}), batch {batch}")
    print(f"{'kernel':<38} {'numba.cuda ms':>14} {'torch ms':>10} {'x torch':>8}")
    for name, ours, theirs in rows:
        (a, _), (b, _) = timeit_interleaved([ours, theirs], repeat_count, sync)
        print(f"{name:<38} {a * 1e3:>14.3f} {b * 1e3:>10.3f} {b / a:>8.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="images per batch (224x224, 4:2:0)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per kernel (best is reported)")
    parser.add_argument("--only", default="", help="run only kernels whose name contains this")
    args = parser.parse_args(argv)

    import numba

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average before the run: {load} on {os.cpu_count()} CPUs")
    print(f"batch {args.batch} x 224x224 4:2:0 (Y 28x28 blocks, CbCr 14x14); numba threads "
          f"{numba.get_num_threads()}, torch threads {torch.get_num_threads()}; best of {args.repeat} "
          f"(median in brackets), ms per batch")
    header = f"{'kernel':<38} {'numba':>16} {'numpy ref':>16} {'torch':>16} {'GB/s':>6} {'x numpy':>8} {'x torch':>8}"
    print(header)
    print("-" * len(header))
    for name, megabytes, ours, ref, theirs in cases(args.batch):
        if args.only not in name:
            continue
        results = timeit_interleaved([ours, ref, theirs], args.repeat)
        cells = [f"{best * 1e3:7.2f} ({med * 1e3:6.1f})" for best, med in results]
        best = [r[0] for r in results]
        print(f"{name:<38} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16} "
              f"{megabytes / 1e3 / best[0]:>6.2f} {best[1] / best[0]:>8.1f} {best[2] / best[0]:>8.1f}")
        sys.stdout.flush()
    run_cuda(args.batch, args.repeat)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average after the run: {load}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
