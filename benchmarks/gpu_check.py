"""GPU check: the CUDA kernels and the batch path on real hardware, in under five minutes.

Run on a machine with a CUDA GPU visible to torch; elsewhere it prints one line saying so and
exits with status 3, having run nothing. Three parts, each printed and written to the JSON
report (``--json``, default ``gpu_check.json``):

1. **kernels**: every CUDA kernel on torch CUDA tensors (``__cuda_array_interface__``, torch's
   current stream) at training batch size (64 images of 224x224, 4:2:0) against the NumPy
   reference: coefficient kernels must match exactly, the float DCT and sample kernels to
   rounding (the CUDA compiler may contract multiply-adds), as ``tests/kernels`` state.
2. **loader**: ``DCTLoader(device="cuda")`` (workers pack int16, one batched kernel launch on
   the GPU) against the per-sample path followed by ``.to("cuda")``: the tensors must be equal,
   and images/s of both, epochs interleaved, plus the bytes copied to the GPU per batch.
3. **training**: images/s of training steps (SGD, batch 64, fp32) of ``resnet50_fbs`` (fbs 16)
   on the batch path against ``resnet50`` on a torchvision-style Pillow pipeline
   (``bench_loader.PillowPipeline``), same workers, same generated photo-like images.

    python benchmarks/gpu_check.py [--images 256] [--steps 20] [--workers N] [--json out.json]

``--dry-run`` runs the same three parts on the CPU (kernels against the reference, the batch
path against the per-sample path, both training arms), with ``--batch`` and ``--crop`` to make
it small: a test of this script's own plumbing where no GPU is lent, so that its first run on
hardware is not its first run. Its timings say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from cdomain.cli.errors import non_negative_int, positive_int

NO_GPU_MESSAGE = "gpu_check: no CUDA GPU is visible to torch (torch.cuda.is_available() is False); nothing was run"
NO_GPU_STATUS = 3


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


#: Where the checks run: "cuda", or "cpu" for ``--dry-run``.
DEVICE = "cuda"


def _sync() -> None:
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def check_kernels(batch: int = 64) -> dict[str, Any]:
    """Each CUDA kernel on a training-sized batch against the NumPy reference."""
    import numpy as np
    import torch

    from cdomain import kernels
    from cdomain.jpeg.tables import ZIGZAG, quality_table
    from cdomain.kernels import reference

    rng = np.random.default_rng(0)
    cuda = torch.device(DEVICE)
    n = 16
    luma = np.clip(rng.laplace(0, 30, (batch, 28, 28, 8, 8)), -1024, 1023).astype(np.int16)
    chroma = np.clip(rng.laplace(0, 20, (batch, 2, 14, 14, 8, 8)), -1024, 1023).astype(np.int16)
    qualities = rng.integers(20, 96, batch)
    tables = np.stack([np.stack([quality_table(q), quality_table(q, True), quality_table(q, True)]) for q in qualities])
    targets = np.stack([np.stack([quality_table(q), quality_table(q, True), quality_table(q, True)])
                        for q in rng.integers(10, 91, batch)])
    plane = rng.integers(0, 256, (batch, 224, 224), dtype=np.uint8)
    rgb = rng.integers(0, 256, (batch, 224, 224, 3), dtype=np.uint8)
    floats = rng.normal(0, 50, (batch * 28 * 28, 8, 8)).astype(np.float32)
    packed_l = np.ascontiguousarray(np.moveaxis(luma.reshape(batch, 28, 28, 64)[..., ZIGZAG[:n]], -1, 1))
    packed_c = np.ascontiguousarray(np.moveaxis(chroma.reshape(batch, 2, 14, 14, 64)[..., ZIGZAG[:n]], -1, 2))

    def gpu(x):
        return torch.from_numpy(np.ascontiguousarray(x)).to(cuda)

    def host(x):
        return x.cpu().numpy() if isinstance(x, torch.Tensor) else tuple(p.cpu().numpy() for p in x)

    cases: dict[str, tuple[Callable[[], Any], Callable[[], Any], float]] = {
        "dequantize_select": (lambda: kernels.dequantize_select(gpu(luma), tables[:, 0], n),
                              lambda: reference.dequantize_select(luma, tables[:, 0], n), 0.0),
        "dequantize_select_420": (lambda: kernels.dequantize_select(gpu(chroma[:, 0]), tables[:, 1], n, upsample=(2, 2)),
                                  lambda: reference.dequantize_select(chroma[:, 0], tables[:, 1], n, (2, 2)), 0.0),
        "dequantize_batch": (lambda: kernels.dequantize_batch(gpu(packed_l), gpu(packed_c), gpu(tables.astype(np.int32)),
                                                              upsample=(2, 2)),
                             lambda: reference.dequantize_batch(packed_l, packed_c, tables, None, (2, 2)), 0.0),
        "dequantize_batch_requant": (
            lambda: kernels.dequantize_batch(gpu(packed_l), gpu(packed_c), tables, targets=targets, upsample=(2, 2)),
            lambda: reference.dequantize_batch(packed_l, packed_c, tables, targets, (2, 2)), 0.0),
        "hflip": (lambda: kernels.hflip(gpu(luma)), lambda: reference.hflip(luma), 0.0),
        "crop": (lambda: kernels.crop(gpu(luma), 2, 3, 20, 21), lambda: reference.crop(luma, 2, 3, 20, 21), 0.0),
        "requantize": (lambda: kernels.requantize(gpu(luma), tables[:, 0], targets[:, 0]),
                       lambda: reference.requantize(luma, tables[:, 0], targets[:, 0]), 0.0),
        "idct_8x8": (lambda: kernels.idct_8x8(gpu(floats)), lambda: reference.idct_8x8(floats), 1e-3),
        "fdct_8x8": (lambda: kernels.fdct_8x8(gpu(floats)), lambda: reference.fdct_8x8(floats), 1e-3),
        "samples_from_blocks": (lambda: kernels.samples_from_blocks(gpu(luma), tables[:, 0]),
                                lambda: reference.samples_from_blocks(luma, tables[:, 0]), 1.0),
        "blocks_from_samples": (lambda: kernels.blocks_from_samples(gpu(plane), tables[:, 0]),
                                lambda: reference.blocks_from_samples(plane, tables[:, 0]), 1.0),
        "ycbcr_to_rgb": (lambda: kernels.ycbcr_to_rgb(gpu(plane), gpu(plane[::-1]), gpu(plane[:, ::-1])),
                         lambda: reference.ycbcr_to_rgb(plane, plane[::-1].copy(), plane[:, ::-1].copy()), 0.0),
        "rgb_to_ycbcr": (lambda: kernels.rgb_to_ycbcr(gpu(rgb)), lambda: reference.rgb_to_ycbcr(rgb), 0.0),
    }
    results = {}
    for name, (on_gpu, on_host, tolerance) in cases.items():
        got = on_gpu()  # first call compiles
        _sync()
        start = time.perf_counter()
        got = on_gpu()
        _sync()
        seconds = time.perf_counter() - start
        got, want = host(got), on_host()
        got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
        diff = max(float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64)))) if g.size else 0.0
                   for g, w in zip(got, want))
        results[name] = {"max_abs_diff": diff, "tolerance": tolerance, "ok": diff <= tolerance, "ms": seconds * 1e3}
        print(f"  {name:<26} max |diff| {diff:<10.3g} {'ok' if diff <= tolerance else 'FAIL'}  {seconds * 1e3:7.2f} ms")
    return results


def check_loader(root: Path, workers: int, rounds: int, batch_size: int = 64, crop: int = 224) -> dict[str, Any]:
    """Batch path on the GPU vs the per-sample path moved to the GPU: equality and images/s."""
    import numpy as np
    import torch

    from cdomain.data.batch_path import float_batch_bytes
    from cdomain.data.dct_transforms import ChannelStats
    from cdomain.data.folder import image_folder
    from cdomain.data.loader import DCTLoader

    samples = image_folder(root)
    fbs = 16
    stats = ChannelStats(np.zeros(3 * fbs), np.full(3 * fbs, 16.0))
    options = dict(batch_size=batch_size, fbs=fbs, crop=crop, augment=True, seed=0, workers=workers, stats=stats)
    per_sample = DCTLoader(samples, **options)
    batched = DCTLoader(samples, device=DEVICE, **options)
    equal = True
    for (a, _), (b, _) in zip(per_sample, batched, strict=True):
        equal &= bool(torch.equal(a.to(DEVICE), b))
    batch, _ = next(iter(batched.packed_batches()))
    bytes_int16, bytes_float = batch.nbytes, float_batch_bytes(batch, fbs, "merged")

    def per_sample_epoch():
        for x, _ in per_sample:
            x.to(DEVICE, non_blocking=True)
        _sync()

    def batched_epoch():
        for _ in batched:
            pass
        _sync()

    times: dict[str, list[float]] = {"per_sample": [], "batch_path": []}
    for _ in range(rounds):
        for name, fn in (("per_sample", per_sample_epoch), ("batch_path", batched_epoch)):
            start = time.perf_counter()
            fn()
            times[name].append(len(samples) / (time.perf_counter() - start))
    result = {"equal": equal, "workers": workers, "bytes_per_batch_int16": bytes_int16,
              "bytes_per_batch_float": bytes_float,
              "images_per_s": {k: statistics.median(v) for k, v in times.items()}}
    result["speedup"] = result["images_per_s"]["batch_path"] / result["images_per_s"]["per_sample"]
    print(f"  tensors equal: {equal}; bytes per batch int16 {bytes_int16} vs float {bytes_float} "
          f"({bytes_int16 / bytes_float:.0%})")
    print(f"  images/s per-sample {result['images_per_s']['per_sample']:.0f}, batch path "
          f"{result['images_per_s']['batch_path']:.0f} ({result['speedup']:.2f}x), workers {workers}")
    return result


def check_training(root: Path, workers: int, steps: int, batch_size: int = 64, crop: int = 224) -> dict[str, Any]:
    """Training images/s: resnet50_fbs (fbs 16, batch path) vs resnet50 (Pillow pipeline)."""
    import numpy as np
    import torch

    from bench_loader import PillowPipeline
    from cdomain.data.dct_transforms import ChannelStats
    from cdomain.data.folder import image_folder
    from cdomain.data.loader import DCTLoader, EpochLoader
    from cdomain.models import create_model

    samples = image_folder(root)
    cuda = torch.device(DEVICE)
    arms = {
        "resnet50_fbs16_batch_path": (
            create_model("resnet50_fbs", fbs=16, num_classes=len(samples.classes)),
            lambda: DCTLoader(samples, batch_size=batch_size, fbs=16, crop=crop, augment=True, workers=workers, device=DEVICE,
                              stats=ChannelStats(np.zeros(48), np.full(48, 16.0)), drop_last=True),
        ),
        "resnet50_rgb_pillow": (
            create_model("resnet50", num_classes=len(samples.classes)),
            lambda: _pinned(EpochLoader(PillowPipeline(samples, "pillow", crop=crop), batch_size=batch_size, shuffle=True,
                                        workers=workers, drop_last=True)),
        ),
    }
    results = {}
    for name, (model, make_loader) in arms.items():
        model = model.to(cuda).train()
        optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loader = make_loader()
        done, images, start = 0, 0, None
        while done < steps + 3:
            for inputs, labels in loader:
                if done == 3:  # after warm-up steps (cuDNN autotuning, worker start)
                    _sync()
                    start, images = time.perf_counter(), 0
                inputs = inputs.to(cuda, non_blocking=True)
                loss = torch.nn.functional.cross_entropy(model(inputs), labels.to(cuda, non_blocking=True))
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                done += 1
                images += len(labels)
                if done >= steps + 3:
                    break
        _sync()
        rate = images / (time.perf_counter() - start)
        results[name] = {"images_per_s": rate, "steps": steps}
        print(f"  {name:<28} {rate:8.1f} images/s")
        del model, optimiser, loader
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
    fbs, rgb = (results[k]["images_per_s"] for k in arms)
    results["ratio"] = fbs / rgb
    print(f"  resnet50_fbs (batch path) / resnet50 RGB (Pillow): {fbs / rgb:.2f}x")
    return results


def _pinned(loader):
    loader.pin_memory = DEVICE == "cuda"
    return loader


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=positive_int, default=256, help="generated photo-like images (default 256)")
    parser.add_argument("--steps", type=positive_int, default=20, help="timed training steps per network")
    parser.add_argument("--rounds", type=positive_int, default=3, help="interleaved loader epochs per path")
    parser.add_argument("--workers", type=non_negative_int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--json", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--batch", type=positive_int, default=64, help="batch size of every part (default 64)")
    parser.add_argument("--crop", type=positive_int, default=224, help="crop of the loader and training parts (default 224)")
    parser.add_argument("--dry-run", action="store_true",
                        help="run every part on the CPU: checks this script, measures nothing about a GPU")
    args = parser.parse_args(argv)
    if args.crop % 16:
        parser.error(f"argument --crop: must be a multiple of 16 pixels, got {args.crop}")
    global DEVICE
    DEVICE = "cpu" if args.dry_run else "cuda"
    if not args.dry_run and not gpu_available():
        print(NO_GPU_MESSAGE, file=sys.stderr)
        return NO_GPU_STATUS
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_loader import make_folder

    begin = time.perf_counter()
    device = "cpu (dry run)" if args.dry_run else torch.cuda.get_device_name()
    report: dict[str, Any] = {"device": device, "torch": torch.__version__, "load_before": os.getloadavg()}
    print(f"GPU: {report['device']}; load {report['load_before']}")
    print(f"1. kernels vs reference, batch {args.batch} x 224x224")
    report["kernels"] = check_kernels(args.batch)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        root = make_folder(Path(tmp) / "imagenet-like", args.images)
        print(f"2. loader: batch path vs per-sample ({args.images} images, workers {args.workers})")
        report["loader"] = check_loader(root, args.workers, args.rounds, args.batch, args.crop)
        print(f"3. training images/s ({args.steps} steps, batch {args.batch})")
        report["training"] = check_training(root, args.workers, args.steps, args.batch, args.crop)
    report["load_after"] = os.getloadavg()
    report["seconds"] = time.perf_counter() - begin
    report["ok"] = all(v["ok"] for v in report["kernels"].values()) and report["loader"]["equal"]
    args.json.write_text(json.dumps(report, indent=2, default=str))
    print(f"{'all checks passed' if report['ok'] else 'SOME CHECKS FAILED'} in {report['seconds']:.0f} s; "
          f"report written to {args.json}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
