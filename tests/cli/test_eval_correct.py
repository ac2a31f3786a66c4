"""cdomain-eval --correct honours --lenient, --transcode and --label-map as the plain sweep does.

The network is trained on a clean copy of the tiny textures; each test then adds what its flag
is for to a fresh copy of the validation files: a truncated JPEG (only lenient reading accepts
it), a CMYK JPEG and a PNG under a ``.JPEG`` name (read through transcoded copies), or a
fine-to-coarse label map. The corrector is a fresh artifact_corrector: these tests are about
which files reach it and how its outputs are scored, not about how well it corrects.
"""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from cdomain.checkpoint import save_checkpoint
from cdomain.cli.eval import main as evaluate_main
from cdomain.cli.train import main as train_main
from cdomain.models import create_model
from tests.helpers import copy_embedded
from tests.jpeg.libjpeg_oracle import libjpeg_decode
from tests.jpeg.test_transcode import write_cmyk, write_png_as_jpg

VAL_IMAGES = 40  # textures-tiny's validation split


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A clean data folder, a DCT classifier trained on it, and a correction checkpoint."""
    root = tmp_path_factory.mktemp("eval-correct")
    data = root / "data"
    classes = copy_embedded(data).classes
    run = root / "run"
    assert train_main(["--data", str(data), "--fbs", "4", "--crop", "32", "--epochs", "1", "--batch-size", "16",
                       "--quiet", "--output", str(run)]) == 0
    corrector = save_checkpoint(root / "ac.safetensors", create_model("artifact_corrector", width=8, blocks=1, embed=8))
    return {"data": data, "classes": classes, "model": run / "model.safetensors", "corrector": corrector}


def data_copy(trained, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(trained["data"], data)
    return data


def sweep(trained, data, out, *flags) -> list[dict]:
    """The rows of a corrected q50 sweep of ``data`` with ``flags``; asserts it succeeded."""
    assert evaluate_main([str(trained["model"]), "--data", str(data), "--qualities", "50", "--crop", "32",
                          "--correct", str(trained["corrector"]), "--output", str(out), *flags]) == 0
    return list(csv.DictReader((out / "sweep.csv").open()))


def test_corrected_sweep_reads_a_truncated_file_leniently(trained, tmp_path, capsys):
    data = data_copy(trained, tmp_path)
    truncated = next((data / "val" / trained["classes"][0]).glob("*.jpg"))
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size * 4 // 5])
    assert libjpeg_decode(truncated.read_bytes())[0] is not None  # libjpeg reads what is left
    # strict reading refuses it, naming the file
    assert evaluate_main([str(trained["model"]), "--data", str(data), "--qualities", "50", "--crop", "32",
                          "--correct", str(trained["corrector"]), "--output", str(tmp_path / "strict")]) == 2
    assert truncated.name in capsys.readouterr().err
    rows = sweep(trained, data, tmp_path / "lenient", "--lenient")
    assert [(row["quality"], int(row["images"]), int(row["skipped"])) for row in rows] == [
        ("", VAL_IMAGES, 0), ("50", VAL_IMAGES, 0)]


def test_corrected_sweep_reads_unsupported_formats_through_transcoded_copies(trained, tmp_path):
    data = data_copy(trained, tmp_path)
    write_cmyk(data / "val" / trained["classes"][0] / "cmyk.JPEG")
    write_png_as_jpg(data / "val" / trained["classes"][1] / "png.JPEG")
    rows = sweep(trained, data, tmp_path / "corrected", "--transcode")
    assert [int(row["images"]) for row in rows] == [VAL_IMAGES + 2] * 2
    # as in the plain sweep: the originals are read through the two copies, the re-encodes are JPEGs of their own
    plain = tmp_path / "plain"
    assert evaluate_main([str(trained["model"]), "--data", str(data), "--qualities", "50", "--crop", "32",
                          "--transcode", "--output", str(plain)]) == 0
    expected = [(row["quality"], row["images"], row["transcoded"]) for row in csv.DictReader((plain / "sweep.csv").open())]
    assert expected == [("", str(VAL_IMAGES + 2), "2"), ("50", str(VAL_IMAGES + 2), "0")]
    assert [(row["quality"], row["images"], row["transcoded"]) for row in rows] == expected


def test_corrected_sweep_scores_a_fine_checkpoint_on_the_coarse_classes(trained, tmp_path, capsys):
    mapping = tmp_path / "coarse.json"
    classes = trained["classes"]
    mapping.write_text(json.dumps({name: "fine-grained" if name.startswith("fine") else "other" for name in classes}))
    rows = sweep(trained, trained["data"], tmp_path / "sweep", "--label-map", str(mapping))
    assert "coarse column" in capsys.readouterr().out
    assert [row["quality"] for row in rows] == ["", "50"]
    for row in rows:  # a right fine prediction is a right coarse one
        assert row["coarse_accuracy"] != "" and float(row["value"]) <= float(row["coarse_accuracy"]) <= 100


@pytest.mark.parametrize("codec", ["h264", "latent"])
def test_correct_is_refused_for_other_codecs(trained, codec, tmp_path, capsys):
    """--correct corrects JPEG artifacts: with --codec h264 or latent it is refused in one line,
    before any work and without writing anything."""
    output = tmp_path / "sweep"
    code = evaluate_main([str(trained["model"]), "--codec", codec, "--correct", str(trained["corrector"]),
                          "--output", str(output)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1
    assert "--correct" in err[0] and f"--codec {codec}" in err[0]
    assert not output.exists()
