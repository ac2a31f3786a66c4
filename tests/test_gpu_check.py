"""benchmarks/gpu_check.py without a GPU: one clear line and a distinct exit status, nothing run."""

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
