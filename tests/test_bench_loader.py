"""benchmarks/bench_loader.py: its ratios are taken within rounds, and a tiny run completes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_loader import paired  # noqa: E402


def test_ratios_are_medians_of_ratios_within_rounds():
    # The load drifts: round 2 is twice as slow for everything. Ratio of medians would say
    # 150 / 150 = 1.0; within each round the loader is 2x the baseline.
    results = {"a": {0: [200.0, 100.0, 180.0]}, "b": {0: [100.0, 50.0, 150.0]}}
    assert paired(results, ("a", 0), lambda r: results["b"][0][r]) == 2.0  # median of 2, 2, 1.2


def test_a_tiny_run_prints_the_targets_and_writes_json(tmp_path):
    report = tmp_path / "loader.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_loader.py"), "--images", "16", "--rounds", "2",
         "--batch", "8", "--workers", "0", "--json", str(report)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "of the decoder (target >= 85%)" in result.stdout and "vs best RGB pipeline at workers 0" in result.stdout
    figures = json.loads(report.read_text())
    assert set(figures["checks"]) == {"dct_vs_decoder_w0", "dct_vs_best_rgb_w0"}
    assert all(len(v["0"]) == 2 and min(v["0"]) > 0 for v in figures["all"].values())


def test_bad_values_are_refused_in_one_line(tmp_path):
    for flags, name in ((["--rounds", "0"], "--rounds"), (["--images", "-3"], "--images"),
                        (["--workers", "0", "-1"], "--workers"), (["--fbs", "65"], "--fbs")):
        result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_loader.py"), *flags],
                                capture_output=True, text=True, timeout=120, cwd=tmp_path)
        last = result.stderr.strip().splitlines()[-1]
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert last.startswith(f"bench_loader.py: error: argument {name}:")
        assert not any(tmp_path.iterdir())
