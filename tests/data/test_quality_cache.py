"""Re-encoded caches that scale: shares per rank and worker, nested folders, O(1) reuse by index."""

from __future__ import annotations

import json
import pathlib
import threading

import pytest
from PIL import Image

from cdomain.data import quality as quality_module
from cdomain.data.embedded import embedded_dataset
from cdomain.data.folder import SampleList, image_folder
from cdomain.data.quality import reencoded_samples
from tests.helpers import free_port


def tiny_val() -> SampleList:
    return image_folder(embedded_dataset("textures-tiny") / "val")


def test_two_shares_each_write_their_own_files(tmp_path, monkeypatch):
    samples = tiny_val()
    calls: dict[str, list[int]] = {}
    original = quality_module.encode_file

    def recording(source, target, *args):
        calls.setdefault(threading.current_thread().name, []).append(int(pathlib.Path(target).stem))
        return original(source, target, *args)

    monkeypatch.setattr(quality_module, "encode_file", recording)
    barrier = threading.Barrier(2, timeout=120)
    results = {}

    def rank(k):
        results[k] = reencoded_samples(samples, 40, "dct", cache_dir=tmp_path, share=(k, 2), wait=barrier.wait)

    threads = [threading.Thread(target=rank, args=(k,), name=f"rank{k}") for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(calls["rank0"]) == list(range(0, len(samples), 2))
    assert sorted(calls["rank1"]) == list(range(1, len(samples), 2))
    assert results[0].paths == results[1].paths
    assert all(pathlib.Path(path).is_file() for path in results[0].paths)
    # nested folders of 1,000 files
    assert results[0].paths[3].endswith("/0000/0000003.jpg")
    index = json.loads((pathlib.Path(results[0].paths[0]).parents[1] / "index.json").read_text())
    assert index["count"] == len(samples) and index["failed"] == []


def test_reuse_reads_the_index_not_every_file(tmp_path, monkeypatch):
    samples = tiny_val()
    first = reencoded_samples(samples, 40, "dct", cache_dir=tmp_path)
    checked = []
    for name in ("exists", "is_file", "stat"):
        original = getattr(pathlib.Path, name)

        def spy(self, *args, _original=original, **kwargs):
            if self.suffix == ".jpg" and str(self).startswith(str(tmp_path)):
                checked.append(self)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, name, spy)
    again = reencoded_samples(samples, 40, "dct", cache_dir=tmp_path)
    assert again.paths == first.paths and checked == []


def test_worker_processes_write_the_same_bytes(tmp_path):
    samples = SampleList(tiny_val().paths[:6], tiny_val().labels[:6], tiny_val().classes)
    inline = reencoded_samples(samples, 30, "pixel", cache_dir=tmp_path / "a")
    pooled = reencoded_samples(samples, 30, "pixel", cache_dir=tmp_path / "b", workers=2)
    for a, b in zip(inline.paths, pooled.paths):
        assert pathlib.Path(a).read_bytes() == pathlib.Path(b).read_bytes()


def test_unreadable_sources_keep_their_path_after_reuse(tmp_path):
    good = tiny_val().paths[0]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    png = tmp_path / "png.jpg"
    Image.new("RGB", (16, 16)).save(png, format="PNG")
    samples = SampleList((good, str(bad), str(png)), (0, 0, 0), ("a",))
    first = reencoded_samples(samples, 50, "dct", cache_dir=tmp_path / "cache")
    assert first.paths[1:] == (str(bad), str(png)) and first.paths[0] != good
    assert reencoded_samples(samples, 50, "dct", cache_dir=tmp_path / "cache").paths == first.paths


def test_a_missing_share_is_an_error_not_a_silent_gap(tmp_path):
    from cdomain.errors import DataError

    samples = tiny_val()
    with pytest.raises(DataError, match="share 1 of 2 .* is missing"):
        reencoded_samples(samples, 40, "dct", cache_dir=tmp_path, share=(0, 2), wait=lambda: None)
    assert not list(tmp_path.rglob("index.json"))  # never marked complete


@pytest.mark.slow
def test_torchrun_ranks_each_write_a_share(tmp_path):
    """Two CPU processes under torchrun re-encode at --quality: one share each, no rank-0-only cache."""
    import os
    import subprocess
    import sys

    root = pathlib.Path(__file__).parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CDOMAIN_DATA": str(tmp_path / "data")}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
         "-m", "cdomain.cli.train", "--data", "textures-tiny", "--epochs", "1", "--batch-size", "8", "--fbs", "8",
         "--quiet", "--quality", "50", "--output", str(tmp_path / "run")],
        cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    shares = sorted(path.name for path in (tmp_path / "data" / "reencoded").rglob("shares/*.json"))
    assert shares == ["0-of-2.json", "0-of-2.json", "1-of-2.json", "1-of-2.json"]  # train and val


def test_strict_lenient_and_transcoded_readings_get_their_own_caches(tmp_path):
    samples = SampleList(tiny_val().paths[:2], tiny_val().labels[:2], tiny_val().classes)
    folders = {
        pathlib.Path(reencoded_samples(samples, 40, "dct", cache_dir=tmp_path, **reading).paths[0]).parents[1].name
        for reading in ({}, {"strict": False}, {"transcode": tmp_path / "copies"})
    }
    assert folders == {"dct-q40", "dct-q40-lenient", "dct-q40-transcoded"}
