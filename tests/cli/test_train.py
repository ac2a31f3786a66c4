"""cdomain-train end to end on a tiny configuration, and its error messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml

from cdomain import DCTLoader
from cdomain.cli.train import main
from cdomain.checkpoint import load_checkpoint

TINY = ["--data", "textures-tiny", "--epochs", "2", "--batch-size", "16", "--fbs", "8", "--quiet"]


def test_train_writes_checkpoint_config_and_metrics(tmp_path, capsys):
    output = tmp_path / "run"
    assert main([*TINY, "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "train epoch   2/2" in printed and "done in" in printed
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    config = yaml.safe_load((output / "config.yaml").read_text())
    assert config["fbs"] == 8 and config["model"] == "resnet_dct_small"
    assert not list(output.glob(".*.tmp"))  # no temporary files left behind

    checkpoint = load_checkpoint(output / "model.safetensors")
    assert checkpoint.model.input_spec["fbs"] == 8 and len(checkpoint.classes) == 10
    loader = DCTLoader("textures-tiny", split="val", batch_size=40, fbs=8, stats=checkpoint.stats)
    inputs, labels = next(iter(loader))
    checkpoint.model.eval()
    with torch.no_grad():
        accuracy = (checkpoint.model(inputs).argmax(1) == labels).float().mean().item() * 100
    summary = json.loads((output / "summary.json").read_text())
    assert accuracy == pytest.approx(records[-1]["val_acc"], abs=1e-6) == summary["final_val_acc"]


def test_yaml_config_and_flag_precedence(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("epochs: 1\nfbs: 4\nbatch-size: 16\n")
    output = tmp_path / "run"
    assert main(["--config", str(config), "--data", "textures-tiny", "--fbs", "6", "--output", str(output), "--quiet"]) == 0
    resolved = yaml.safe_load((output / "config.yaml").read_text())
    assert resolved["epochs"] == 1 and resolved["fbs"] == 6 and resolved["batch_size"] == 16


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--input", "pixels"], "invalid choice"),
        (["--bogus"], "unrecognized arguments"),
        (["--epochs", "1.5"], "invalid int value"),
    ],
)
def test_unparseable_flags_exit_with_argparse_usage(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--fbs", "0"], "--fbs: must be in 1..64"),
        (["--crop", "20"], "--crop: must be a positive multiple of 16"),
        (["--epochs", "0"], "--epochs: must be >= 1"),
        (["--lr", "nan"], "--lr: must be a finite number"),
        (["--seed", "-1"], "--seed: must be >= 0"),
        (["--device", "foo"], "--device: must be auto, cpu, cuda or cuda:N"),
        (["--mode", "npt", "--target-quality", "10"], "--init"),
        (["--mode", "cpt", "--target-quality", "33"], "not in the curriculum"),
        (["--mode", "joint"], "--input latent"),
    ],
)
def test_bad_values_give_one_line_naming_the_flag(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--model", "resnet_rgb_small"], "does not take DCT input"),
        (["--model", "no_such_net"], "no_such_net"),
        (["--data", "/nonexistent/folder"], "nor a folder"),
    ],
)
def test_bad_choices_are_reported_without_traceback(tmp_path, argv, message, capsys):
    assert main([*TINY, "--output", str(tmp_path / "run"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_console_script_entry_point(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cdomain.cli.train", "--list-models"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "resnet_dct_small" in result.stdout.split()


@pytest.mark.parametrize(
    "text,message",
    [
        ("task: foo\n", "task: must be one of classification, counting, segmentation, got 'foo'"),
        ("epochs: 1.5\n", "epochs: must be an integer, got 1.5"),
        ("curriculum: [75, x, 10]\n", "curriculum: must be a list of integers"),
        ("lr: [1]\n", "lr: must be a number"),
        ("bogus: 1\n", "unknown option(s) bogus"),
        ("- just\n- a list\n", "expected a mapping"),
        ("epochs: [\n", "not valid YAML"),
    ],
)
def test_yaml_with_a_wrong_type_or_value_names_file_and_key(tmp_path, text, message, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(text)
    assert main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and "train.yaml" in err and err.count("\n") == 1


def test_a_run_config_reads_back_equal(tmp_path):
    from cdomain.train import TrainConfig

    output = tmp_path / "run"
    assert main([*TINY, "--output", str(output), "--curriculum", "90,50", "--aug-quality", "20,30"]) == 0
    saved = TrainConfig.from_yaml(output / "config.yaml")
    assert saved.curriculum == (90, 50) and saved.aug_quality == (20, 30) and saved.fbs == 8
    assert TrainConfig.from_yaml(output / "config.yaml") == TrainConfig.from_mapping(yaml.safe_load(saved.to_yaml()))
    again = tmp_path / "again"
    assert main(["--config", str(output / "config.yaml"), "--output", str(again)]) == 0
    assert TrainConfig.from_yaml(again / "config.yaml") == saved.replace(output=str(again))
