"""benchmarks/gpu_check.py without a GPU: one clear line and a distinct exit status, nothing run;
with --dry-run, every part of it on the CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: run benchmarks/gpu_check.py itself")
def test_gpu_check_says_in_one_line_that_there_is_no_gpu(tmp_path):
    report = tmp_path / "report.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--json", str(report)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 3
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU is visible to torch" in lines[0] and "nothing was run" in lines[0]
    assert not report.exists()


def test_gpu_check_dry_run_exercises_every_part_on_the_cpu(tmp_path):
    """--dry-run runs the script's three parts on the CPU at a tiny size, so its plumbing is
    tested without a GPU: every kernel agrees with the NumPy reference, the batch path's tensors
    equal the per-sample path's, and both training arms report images/s."""
    import json

    report = tmp_path / "report.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--images", "8",
                             "--batch", "4", "--crop", "64", "--steps", "1", "--rounds", "1", "--workers", "0",
                             "--json", str(report)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(report.read_text())
    assert data["device"] == "cpu (dry run)" and data["ok"] is True
    assert {"dequantize_batch", "dequantize_batch_requant", "dequantize_select_420", "idct_8x8"} <= set(data["kernels"])
    assert all(entry["ok"] for entry in data["kernels"].values())
    assert data["loader"]["equal"] is True
    assert data["loader"]["bytes_per_batch_int16"] < data["loader"]["bytes_per_batch_float"] / 2
    training = data["training"]
    assert training["resnet50_fbs16_batch_path"]["images_per_s"] > 0 and training["resnet50_rgb_pillow"]["images_per_s"] > 0
