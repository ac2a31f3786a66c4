"""image_folder refuses folders it cannot use as a data set, with a DataError naming the folder."""

from __future__ import annotations

import pickle

import pytest

from cdomain.data.folder import MissingDataError, image_folder, resolve_source
from cdomain.errors import DataError


def jpeg(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xd9")  # listing only: never decoded here


def test_empty_class_folder_is_refused(tmp_path):
    jpeg(tmp_path / "cat" / "0.jpg")
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="class folder has no JPEG files") as caught:
        image_folder(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'dog'}: ")
    assert ".jpg" in str(caught.value) and ".jpeg" in str(caught.value)


def test_empty_class_folder_is_refused_through_resolve_source(tmp_path):
    jpeg(tmp_path / "val" / "a" / "0.JPG")
    (tmp_path / "val" / "b").mkdir()
    with pytest.raises(DataError, match="b: class folder has no JPEG files"):
        resolve_source(tmp_path, "val")


def test_hidden_folders_are_not_classes(tmp_path):
    jpeg(tmp_path / "a" / "0.jpeg")
    (tmp_path / ".cache").mkdir()
    samples = image_folder(tmp_path)
    assert samples.classes == ("a",) and samples.labels == (0,)


def test_no_class_folders_is_a_data_error(tmp_path):
    jpeg(tmp_path / "loose.jpg")
    with pytest.raises(DataError, match="no class sub-folders"):
        image_folder(tmp_path)


def test_missing_folder_is_data_error_and_file_not_found(tmp_path):
    with pytest.raises(MissingDataError) as caught:
        image_folder(tmp_path / "nowhere")
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, DataError)
    assert isinstance(caught.value, ValueError)
    assert "nowhere: dataset folder does not exist" in str(caught.value)
    again = pickle.loads(pickle.dumps(caught.value))
    assert type(again) is MissingDataError and str(again) == str(caught.value)
