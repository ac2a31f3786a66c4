"""The reproduction scripts' --quick configurations run end to end and report what they claim."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def script(name: str):
    spec = importlib.util.spec_from_file_location(f"study_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_mitigation_study_quick(tmp_path, capsys):
    result = script("mitigation_study").main(["--quick", "--output", str(tmp_path)])
    assert [row["quality"] for row in result["rows"]] == [10, 50]
    assert set(result["seconds"]) == {"no_mitigation", "ac", "ttac", "fine_tuned"}
    # the correction arms skip the corrector on the original files
    original = result["original"]
    assert original["ac"] == original["ttac"] == original["no_mitigation"]
    assert (tmp_path / "mitigation.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "table.json").read_text())["metric"] == "acc"
    assert "| 10 |" in capsys.readouterr().out


@pytest.mark.slow
def test_cpt_vs_npt_quick_has_an_equal_epoch_arm_and_seeds(tmp_path, capsys):
    result = script("cpt_vs_npt").main(["--quick", "--seeds", "0", "1", "--output", str(tmp_path)])
    by_quality = {row["quality"]: row for row in result["rows"]}
    assert by_quality[5]["epochs"] == {"npt": 1, "npt_equal": 8, "cpt": 8}  # curriculum 60..5: 8 phases
    assert by_quality[1]["epochs"]["npt_equal"] == 9
    assert all(len(values) == 2 for values in by_quality[5]["mae"].values())  # one per seed
    assert "±" in capsys.readouterr().out


@pytest.mark.slow
def test_joint_vs_frozen_quick_prints_probe_and_equal_bpp(tmp_path, capsys):
    rows = script("joint_vs_frozen").main(["--quick", "--output", str(tmp_path)])
    assert [quality for quality, _, _ in rows] == [1, 4]
    assert all(0 <= frozen["probe"] <= 100 for _, frozen, _ in rows)
    out = capsys.readouterr().out
    assert "linear probe" in out and "frozen acc at the joint bpp" in out


@pytest.mark.slow
def test_joint_vs_frozen_reuses_and_continues_its_codecs(tmp_path, capsys):
    """A rerun reuses the trained codec and its latent cache; more --codec-steps continue the
    codec's training from its saved state, and the latents are encoded afresh for it."""
    main = script("joint_vs_frozen").main
    tiny = ["--data", "textures-256-tiny", "--qualities", "1", "--codec-batch", "2", "--probe-only",
            "--threads", "1", "--output", str(tmp_path)]
    first = main(tiny + ["--codec-steps", "2"])
    assert 0 <= first[0][1]["probe"] <= 100
    main(tiny + ["--codec-steps", "2"])
    assert "reused (2 steps)" in capsys.readouterr().out
    main(tiny + ["--codec-steps", "3"])  # a cache of the 2-step codec is replaced, not refused
    out = capsys.readouterr().out
    assert "continued from step 2, trained to 3 steps" in out and "linear probe" in out


def test_equal_bpp_interpolation():
    at_bpp = script("joint_vs_frozen").at_bpp
    assert at_bpp([(0.1, 10.0), (0.4, 30.0)], 0.2) == pytest.approx(20.0)  # halfway in log2: 0.1 -> 0.2 -> 0.4
    assert at_bpp([(0.1, 10.0), (0.4, 30.0)], 0.5) is None


@pytest.mark.parametrize("script, args, flag", [
    ("joint_vs_frozen.py", ["--quick", "--qualities", "9"], "--qualities"),
    ("cpt_vs_npt.py", ["--quick", "--q0-epochs", "0"], "--q0-epochs"),
    ("mitigation_study.py", ["--quick", "--task", "nope"], "--task"),
    ("gpu_check.py", ["--dry-run", "--crop", "40"], "--crop"),
    ("gpu_check.py", ["--dry-run", "--workers", "-1"], "--workers"),
])
def test_study_scripts_refuse_bad_input_in_one_line(tmp_path, script, args, flag):
    """A wrong value ends with one line naming the flag, status 2, no traceback, nothing written."""
    output = tmp_path / "out"
    extra = [] if script == "gpu_check.py" else ["--output", str(output)]
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args, *extra],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{script}: error:") and flag in last
    assert not output.exists()
