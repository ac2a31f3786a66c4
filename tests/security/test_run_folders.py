"""Crafted run folders, state files, checkpoints and configs: no code runs, and nothing outside the
run folder is read, written or deleted; folders are reused only when asked.
"""

from __future__ import annotations

import errno
import io
import json
import pickle
import threading
from pathlib import Path

import pytest
import torch

from cdomain.checkpoint import load_checkpoint
from cdomain.cli.eval import main as eval_main
from cdomain.cli.train import main
from cdomain.errors import CheckpointError
from cdomain.train.run_folder import claim_default, read_metrics
from cdomain.train.state import load_state, load_training_state
from tests.helpers import copy_embedded

TINY = ["--data", "textures-tiny", "--batch-size", "16", "--fbs", "4", "--quiet", "--epochs", "1"]


class Explode:
    """Unpickling this runs ``touch MARKER``: the proof that a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def malicious_pickle(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"state_dict": Explode(marker)}, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("runs") / "run"
    assert main([*TINY, "--output", str(output)]) == 0
    return output


def copy_run(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


# ----------------------------------------------------------------------------- state.json


@pytest.mark.parametrize("name", ["../elsewhere.safetensors", "/etc/passwd", "checkpoints/../../x.safetensors",
                                  "checkpoints/sub/x.safetensors", "state.json"])
def test_state_paths_must_stay_in_the_checkpoints_folder(tmp_path, finished_run, name, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    state = json.loads((run / "state.json").read_text())
    state["files"]["optim"] = name
    state["epoch"] = 0  # not finished: the resume must read the files
    (run / "state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="refuses"):
        load_state(run)
    assert main(["--resume", "--output", str(run), "--epochs", "2"]) == 2
    assert "refuses" in capsys.readouterr().err


def test_a_symlink_out_of_the_run_folder_is_refused(tmp_path, finished_run):
    run = copy_run(finished_run, tmp_path / "run")
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(b"secret")
    state = json.loads((run / "state.json").read_text())
    (run / "checkpoints" / "link.safetensors").symlink_to(outside)
    state["files"]["optim"] = "checkpoints/link.safetensors"
    (run / "state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="outside the run folder"):
        load_state(run)


def test_a_pickled_optimizer_file_is_never_unpickled(tmp_path, finished_run, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    marker = tmp_path / "pwned"
    state = json.loads((run / "state.json").read_text())
    (run / state["files"]["optim"]).write_bytes(malicious_pickle(marker))
    state["epoch"] = 0
    (run / "state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="not a cdomain training state"):
        load_training_state(run / state["files"]["optim"])
    assert main(["--resume", "--output", str(run), "--epochs", "2"]) == 2
    assert not marker.exists()
    assert "optim" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["{not json", "[]", '{"format": "cdomain-state-2", "phase": "x"}',
                                  '{"format": "cdomain-state-2", "phase": 0, "epoch": -1}',
                                  '{"format": "other"}', '{"format": "cdomain-state-2", "evil": 1}'])
def test_a_corrupt_state_file_is_named(tmp_path, finished_run, text, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    (run / "state.json").write_text(text)
    assert main(["--resume", "--output", str(run), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "state.json" in err and err.count("\n") == 1


def test_a_torn_last_metrics_line_is_dropped_and_other_damage_named(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert read_metrics(path) == [{"epoch": 1}, {"epoch": 2}]
    path.write_text('{"epoch": 1}\ngarbage\n{"epoch": 3}\n')
    with pytest.raises(CheckpointError, match="metrics.jsonl: line 2"):
        read_metrics(path)


# ----------------------------------------------------------------------------- checkpoints


def test_a_pickled_codec_file_runs_no_code(tmp_path):
    from cdomain.latents.compat import compressai_available

    if not compressai_available():
        pytest.skip("CompressAI is not installed")
    from cdomain.latents.codecs import CodecError, load_codec

    marker = tmp_path / "pwned"
    path = tmp_path / "codec.pth.tar"
    path.write_bytes(malicious_pickle(marker))
    with pytest.raises(CodecError, match="codec.pth.tar"):
        load_codec(path)
    assert not marker.exists()


def test_a_checkpoint_that_does_not_fit_the_data_is_refused(tmp_path, finished_run, capsys):
    # 10 texture classes against a 2-class folder made of two of its class folders
    data = tmp_path / "two"
    source = Path(load_checkpoint(finished_run / "model.safetensors").info["data"])
    from cdomain.data.registry import open_dataset

    textures = open_dataset(str(source))
    for split in ("train", "val"):
        for label in (0, 1):
            folder = data / split / f"c{label}"
            folder.mkdir(parents=True)
            for path in [p for p, y in zip(textures.split(split).paths, textures.split(split).labels) if y == label][:4]:
                (folder / Path(path).name).write_bytes(Path(path).read_bytes())
    assert eval_main([str(finished_run / "model.safetensors"), "--data", str(data), "--qualities", "50",
                      "--output", str(tmp_path / "sweep")]) == 2
    assert "10 classes, the data has 2" in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()  # refused before any work
    assert main([*TINY, "--data", str(data), "--crop", "32", "--mode", "npt", "--target-quality", "50",
                 "--init", str(finished_run / "model.safetensors"), "--output", str(tmp_path / "npt")]) == 2
    assert "does not fit the data" in capsys.readouterr().err


def test_eval_refuses_a_counting_checkpoint_on_classification_data(tmp_path, capsys):
    run = tmp_path / "count"
    assert main(["--task", "counting", "--data", "crowd-tiny", "--epochs", "1", "--fbs", "4", "--quiet",
                 "--output", str(run)]) == 0
    assert eval_main([str(run / "model.safetensors"), "--data", "textures-tiny", "--qualities", "50",
                      "--output", str(tmp_path / "sweep")]) == 2
    err = capsys.readouterr().err
    assert "crowd-counting" in err or "counting" in err
    assert err.count("\n") == 1 and "Traceback" not in err


# ----------------------------------------------------------------------------- output folders


def test_a_second_run_into_a_used_folder_is_refused_and_changes_nothing(tmp_path, finished_run, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main([*TINY, "--output", str(run)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_overwrite_replaces_only_what_the_run_wrote(tmp_path, finished_run):
    run = copy_run(finished_run, tmp_path / "run")
    mine = run / "notes.txt"
    mine.write_text("keep me")
    (run / "checkpoints" / "my-weights.safetensors").write_bytes(b"mine")
    (run / "checkpoints" / "folder").mkdir()
    assert main([*TINY, "--epochs", "2", "--output", str(run), "--overwrite"]) == 0
    assert mine.read_text() == "keep me"
    assert (run / "checkpoints" / "my-weights.safetensors").read_bytes() == b"mine"
    assert (run / "checkpoints" / "folder").is_dir()
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    assert main([*TINY, "--output", str(folder), "--overwrite"]) == 2
    assert "no config.yaml" in capsys.readouterr().err
    assert (folder / "thesis.tex").read_text() == "precious"


def test_output_naming_a_file_is_refused_before_any_work(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main([*TINY, "--output", str(target)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert eval_main([str(target), "--output", str(target)]) == 2
    assert target.read_text() == "x"


def test_runs_started_together_get_their_own_folders(tmp_path):
    claimed, barrier = [], threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        claimed.append(claim_default("20260101-000000-net-fbs16-standard", tmp_path))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(claimed)) == 8 and all(path.is_dir() for path in claimed)


def test_user_files_in_checkpoints_survive_training(tmp_path):
    output = tmp_path / "run"
    (output / "checkpoints" / "sub").mkdir(parents=True)
    mine = output / "checkpoints" / "weights-p0-e0001.safetensors.bak"
    mine.write_bytes(b"mine")
    # a non-empty folder needs --overwrite, and the folder has no config.yaml: refused
    assert main([*TINY, "--epochs", "3", "--output", str(output)]) == 2
    (output / "config.yaml").write_text("{}")
    assert main([*TINY, "--epochs", "3", "--output", str(output), "--overwrite"]) == 0
    assert mine.read_bytes() == b"mine" and (output / "checkpoints" / "sub").is_dir()


def test_a_full_disk_gives_one_line_and_a_consistent_state(tmp_path, monkeypatch, capsys):
    from cdomain.train import state as state_module

    output = tmp_path / "run"
    calls = {"count": 0}
    real = state_module.save_training_state

    def fill_up(path, state):
        calls["count"] += 1
        if calls["count"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, state)

    monkeypatch.setattr("cdomain.train.driver.save_training_state", fill_up)
    assert main([*TINY, "--epochs", "3", "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert "no space left on the device" in err and "--resume" in err and err.count("\n") == 1
    assert json.loads((output / "state.json").read_text())["epoch"] == 1  # the last committed epoch
    monkeypatch.undo()
    assert main(["--resume", "--output", str(output)]) == 0
    assert [json.loads(line)["epoch"] for line in (output / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_yaml_never_constructs_python_objects(tmp_path, capsys):
    config = tmp_path / "evil.yaml"
    marker = tmp_path / "pwned"
    config.write_text(f"epochs: !!python/object/apply:os.system ['touch {marker}']\n")
    assert main(["--config", str(config)]) == 2
    assert not marker.exists()
    assert "evil.yaml" in capsys.readouterr().err


def test_worker_errors_arrive_as_themselves(tmp_path):
    from cdomain import DCTLoader, JPEGError
    from cdomain.data.registry import open_dataset

    paths = list(open_dataset("textures-tiny").split("train").paths[:3])
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(Path(paths[0]).read_bytes()[:200])
    loader = DCTLoader([*paths, str(bad)], batch_size=4, fbs=4, workers=1, augment=False)
    with pytest.raises(JPEGError) as caught:
        list(loader)
    assert caught.value.source == str(bad) and "bad.jpg" in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_skip_bad_is_counted_once_per_run(tmp_path, capsys):
    data = tmp_path / "data"
    textures = copy_embedded(data)
    (data / "train" / textures.classes[0] / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    output = tmp_path / "run"
    assert main([*TINY, "--data", str(data), "--crop", "32", "--epochs", "3", "--skip-bad",
                 "--output", str(output)]) == 0
    summary = json.loads((output / "summary.json").read_text())
    assert summary["skipped_files"] == 1 and summary["skipped"][0]["path"].endswith("broken.jpg")
    assert "skipped 1 unreadable file" in capsys.readouterr().out
    assert eval_main([str(output / "model.safetensors"), "--data", str(data), "--qualities", "50", "--skip-bad",
                      "--crop", "32", "--output", str(tmp_path / "sweep")]) == 0


def test_counting_defaults_work_on_crowd_tiny(tmp_path):
    """12 training images and the default batch of 16: one batch of 12, not an empty epoch."""
    assert main(["--task", "counting", "--data", "crowd-tiny", "--epochs", "1", "--quiet",
                 "--output", str(tmp_path / "run")]) == 0


def test_pickle_of_every_cdomain_error_keeps_type_and_message():
    from cdomain.errors import ConfigError, DataError, RunFolderError

    for error in (ConfigError("lr", "must be > 0"), CheckpointError("x: bad"), DataError("d: bad"),
                  RunFolderError("o: bad")):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error)


def test_a_run_that_fails_early_leaves_no_empty_default_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--input", "latent", "--data", "textures-tiny"]) == 2
    assert "--codec" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # neither the run folder nor the runs/ made for it


def test_a_failed_run_takes_back_only_the_empty_folders_it_created(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    missing = str(tmp_path / "no-such-data")
    # an explicit --output with missing parents: all of them are taken back
    assert main([*TINY, "--data", missing, "--output", str(tmp_path / "a" / "b" / "run")]) == 2
    assert "no-such-data" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    # folders that were there before stay, empty or not; so does what is in them
    (tmp_path / "a").mkdir()
    assert main([*TINY, "--data", missing, "--output", str(tmp_path / "a" / "b" / "run")]) == 2
    assert list(tmp_path.iterdir()) == [tmp_path / "a"] and list((tmp_path / "a").iterdir()) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*TINY, "--data", missing, "--output", str(empty)]) == 2
    assert empty.is_dir()
    (tmp_path / "runs").mkdir()
    assert main([*TINY, "--data", missing]) == 2
    assert (tmp_path / "runs").is_dir() and list((tmp_path / "runs").iterdir()) == []
    (tmp_path / "runs" / "notes.txt").write_text("mine")
    assert main([*TINY, "--data", missing]) == 2
    assert [path.name for path in (tmp_path / "runs").iterdir()] == ["notes.txt"]
    capsys.readouterr()


def test_a_failed_sweep_leaves_no_empty_folder_it_created(tmp_path, monkeypatch, finished_run, capsys):
    data = tmp_path / "data"
    textures = copy_embedded(data)
    broken = next((data / "val" / textures.classes[0]).glob("*.jpg"))
    broken.write_bytes(broken.read_bytes()[:200])  # refused only once the sweep reads it
    monkeypatch.chdir(tmp_path)
    checkpoint = str(finished_run / "model.safetensors")
    assert eval_main([checkpoint, "--data", str(data), "--qualities", "50", "--crop", "32"]) == 2
    assert broken.name in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]  # no runs/eval-<time>, no runs/
    assert eval_main([checkpoint, "--data", str(data), "--qualities", "50", "--crop", "32",
                      "--output", str(tmp_path / "sweeps" / "q50")]) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]


def test_tidy_on_failure_removes_only_created_folders_left_empty(tmp_path):
    from cdomain.atomic import make_folders, tidy_on_failure

    (tmp_path / "before").mkdir()
    with pytest.raises(RuntimeError), tidy_on_failure() as created:
        make_folders(tmp_path / "before" / "a" / "b" / "c")
        make_folders(tmp_path / "before" / "a" / "d")
        (tmp_path / "before" / "a" / "b" / "kept.txt").write_text("written meanwhile")
        raise RuntimeError("fail")
    assert created == [tmp_path / "before" / p for p in ("a", "a/b", "a/b/c", "a/d")]
    # c and d were empty; b holds a file, so it and a stay; "before" was never this block's
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "before", "before/a", "before/a/b", "before/a/b/kept.txt"]
    with tidy_on_failure():  # success: everything it made stays, empty or not
        make_folders(tmp_path / "new" / "empty")
    assert (tmp_path / "new" / "empty").is_dir()
