"""cdomain-eval: a quality sweep of trained checkpoints writes CSV, JSON and a PNG plot."""

from __future__ import annotations

import csv
import json

from cdomain.cli.eval import main as evaluate_main
from cdomain.cli.train import main as train_main


def test_sweep_of_two_checkpoints(tmp_path, capsys):
    runs = []
    for name, extra in (("dct", []), ("rgb", ["--input", "rgb"])):
        output = tmp_path / name
        assert train_main(["--data", "textures-tiny", "--epochs", "1", "--batch-size", "16", "--fbs", "4",
                           "--quiet", "--output", str(output), *extra]) == 0
        runs.append(output / "model.safetensors")
    out = tmp_path / "sweep"
    assert evaluate_main([*map(str, runs), "--data", "textures-tiny", "--qualities", "10,90", "--output", str(out)]) == 0
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert {(r["checkpoint"], r["quality"]) for r in rows} == {
        (c, q) for c in ("dct", "rgb") for q in ("", "10", "90")
    }
    by_quality = {r["quality"]: r for r in rows if r["checkpoint"] == "dct"}
    assert float(by_quality["10"]["mean_bytes"]) < float(by_quality["90"]["mean_bytes"])
    assert 0 < float(by_quality["10"]["bits_per_pixel"]) < float(by_quality["90"]["bits_per_pixel"])
    assert len(json.loads((out / "sweep.json").read_text())) == 6
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "q10" in capsys.readouterr().out


def test_missing_checkpoint_is_reported(tmp_path, capsys):
    assert evaluate_main([str(tmp_path / "none.safetensors"), "--data", "textures-tiny"]) == 2
    assert "none.safetensors" in capsys.readouterr().err


def test_sweep_of_a_counting_checkpoint_reports_mae(tmp_path):
    run = tmp_path / "count"
    assert train_main(["--task", "counting", "--data", "crowd-tiny", "--epochs", "1", "--batch-size", "4", "--fbs", "4",
                       "--optimizer", "adamw", "--lr", "1e-3", "--quiet", "--output", str(run)]) == 0
    out = tmp_path / "sweep"
    assert evaluate_main([str(run / "model.safetensors"), "--data", "crowd-tiny", "--qualities", "5",
                          "--output", str(out)]) == 0
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert {r["metric"] for r in rows} == {"mae"} and {r["quality"] for r in rows} == {"", "5"}
    assert all(float(r["value"]) > 0 for r in rows)  # an untrained counter is never exactly right
    assert float(rows[0]["bits_per_pixel"]) > float(rows[1]["bits_per_pixel"])  # q5 files are smaller
