"""Runs the CUDA-kernel tests under Numba's CUDA simulator, in a child process.

``NUMBA_ENABLE_CUDASIM`` must be set before numba is first imported, so the simulator tests
(marked ``cudasim``) cannot share this process; this test starts a second pytest with the
variable set, and so one ``python -m pytest`` checks the GPU kernels too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cuda_kernels_under_the_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cudasim", "tests"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, summary
    print(summary)
