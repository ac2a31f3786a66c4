"""The one checkpoint format (cdomain.checkpoint): round trips of task networks and codecs, every
refusal naming the file, nothing built from a hostile header, and check_fits."""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import cdomain.models
from cdomain.checkpoint import FORMAT, check_fits, load_checkpoint, read_header, save_checkpoint
from cdomain.data.dct_transforms import ChannelStats
from cdomain.errors import CheckpointError
from cdomain.models import InputSpec, create_model, model_config
from tests.latents.conftest import codec  # noqa: F401  the trained test codec (a fixture)

CLASSES = tuple(f"class{i}" for i in range(10))
HUGE = 4_000_000_000


def small_model(num_classes: int = 10, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("resnet_dct_small", num_classes=num_classes, fbs=4, base_width=8)


def small_stats() -> ChannelStats:
    return ChannelStats(np.linspace(-3, 3, 12), np.linspace(0.5, 2, 12))


@pytest.fixture
def saved(tmp_path) -> Path:
    """A 10-class resnet_dct_small checkpoint with statistics, class names and info."""
    return save_checkpoint(tmp_path / "model.safetensors", small_model(), stats=small_stats(), classes=CLASSES,
                           info={"epoch": 7})


def edit_header(source: Path, dest: Path, edit) -> Path:
    """Copy ``source`` to ``dest`` with its cdomain header JSON passed through ``edit(document)``."""
    data = source.read_bytes()
    size = int.from_bytes(data[:8], "little")
    raw = json.loads(data[8 : 8 + size])
    document = json.loads(raw["__metadata__"]["cdomain"])
    edit(document)
    raw["__metadata__"]["cdomain"] = json.dumps(document)
    header = json.dumps(raw).encode()
    header += b" " * (-len(header) % 8)  # safetensors pads its header to 8 bytes
    dest.write_bytes(len(header).to_bytes(8, "little") + header + data[8 + size :])
    return dest


def png_bytes(width: int = 4, height: int = 4) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\0" + bytes(range(3 * width)) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def refused(load, path: Path, match: str) -> CheckpointError:
    """``load(path)`` raises CheckpointError matching ``match``, and the message names the file."""
    with pytest.raises(CheckpointError, match=match) as caught:
        load(path)
    assert str(path) in str(caught.value)
    return caught.value


# ---------------------------------------------------------------------------- round trips


def test_model_round_trip(saved):
    model = small_model()
    loaded = load_checkpoint(saved)
    assert loaded.path == saved and loaded.header.kind == "model" and loaded.header.name == "resnet_dct_small"
    state, restored = model.state_dict(), loaded.model.state_dict()
    assert list(restored) == list(state)
    for key in state:
        assert torch.equal(restored[key], state[key]), key
    assert np.array_equal(loaded.stats.mean, small_stats().mean) and loaded.stats.mean.dtype == np.float32
    assert np.array_equal(loaded.stats.std, small_stats().std)
    assert loaded.classes == CLASSES and loaded.info == {"epoch": 7}
    assert loaded.input_spec == model.input_spec == InputSpec("dct", "merged", 4, 12, 8)
    assert loaded.model.input_spec == model.input_spec
    assert model_config(loaded.model) == model_config(model)
    x = torch.randn(2, 12, 3, 3)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded.model.eval()(x))
    header = read_header(saved)
    assert header == loaded.header and header.task == "classification"
    assert header.args == {key: value for key, value in model_config(model).items() if key != "name"}


def test_model_without_stats_or_classes(tmp_path):
    path = save_checkpoint(tmp_path / "plain.safetensors", small_model(num_classes=3))
    loaded = load_checkpoint(path)
    assert loaded.stats is None and loaded.classes == () and loaded.info == {}
    assert loaded.model.num_classes == 3


def test_edited_copy_of_a_checkpoint_still_loads(saved, tmp_path):
    """The header-editing helper of the error tests keeps a loadable file when it changes nothing."""
    copy = edit_header(saved, tmp_path / "copy.safetensors", lambda document: None)
    assert load_checkpoint(copy).classes == CLASSES


def test_codec_round_trip(codec, tmp_path):  # noqa: F811  (the imported fixture)
    path = save_checkpoint(tmp_path / "codec.safetensors", codec, info={"quality": 3})
    header = read_header(path)
    assert header.kind == "codec" and header.task == "codec" and header.input_spec is None
    assert header.name == codec.cdomain_config["architecture"]
    assert (header.args["N"], header.args["M"]) == (16, 24) and header.info == {"quality": 3}
    loaded = load_checkpoint(path)
    assert loaded.header == header and loaded.stats is None and loaded.classes == ()
    assert type(loaded.model) is type(codec) and loaded.model.cdomain_config == codec.cdomain_config
    state, restored = codec.state_dict(), loaded.model.state_dict()
    assert list(restored) == list(state)
    for key in state:
        assert torch.equal(restored[key], state[key]), key
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(codec.g_a(x), loaded.model.g_a(x))


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("load", [load_checkpoint, read_header], ids=["load", "header"])
def test_missing_file(tmp_path, load):
    refused(load, tmp_path / "absent.safetensors", "cannot read checkpoint")


@pytest.mark.parametrize("load", [load_checkpoint, read_header], ids=["load", "header"])
def test_folder(tmp_path, load):
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    refused(load, folder, "is a folder")


@pytest.mark.parametrize("load", [load_checkpoint, read_header], ids=["load", "header"])
def test_random_bytes(tmp_path, load):
    path = tmp_path / "random.safetensors"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    refused(load, path, "not a cdomain checkpoint")


@pytest.mark.parametrize("load", [load_checkpoint, read_header], ids=["load", "header"])
def test_png_renamed(tmp_path, load):
    path = tmp_path / "picture.safetensors"
    path.write_bytes(png_bytes())
    refused(load, path, "not a cdomain checkpoint")


@pytest.mark.parametrize("load", [load_checkpoint, read_header], ids=["load", "header"])
def test_safetensors_without_cdomain_header(tmp_path, load):
    from safetensors.torch import save_file

    path = tmp_path / "bare.safetensors"
    save_file(small_model().state_dict(), str(path), metadata={"format": "pt"})
    refused(load, path, "no cdomain header")


def test_huge_num_classes_is_refused_before_anything_is_built(saved, tmp_path, monkeypatch):
    calls = []
    real = cdomain.models.create_model

    def spy(name, **kwargs):
        device = torch.empty(()).device.type  # the default device the model would be built on
        calls.append((kwargs.get("num_classes"), device))
        if kwargs.get("num_classes") == HUGE:
            pytest.fail(f"create_model called with num_classes={HUGE} on {device}")
        return real(name, **kwargs)

    monkeypatch.setattr(cdomain.models, "create_model", spy)
    load_checkpoint(saved)  # the spy is on the path load_checkpoint takes ...
    assert calls == [(10, "meta")]  # ... and a real checkpoint is first built on the meta device
    calls.clear()

    def claim_huge(document):
        document["args"]["num_classes"] = HUGE
        document["classes"] = []

    path = edit_header(saved, tmp_path / "huge.safetensors", claim_huge)
    for load in (load_checkpoint, read_header):
        refused(load, path, f"num_classes={HUGE} is out of range")
    assert calls == []


def test_large_but_allowed_num_classes_is_only_built_on_meta(saved, tmp_path, monkeypatch):
    """A header within the argument limits but not matching the weights is built shapes-only."""
    calls = []
    real = cdomain.models.create_model

    def spy(name, **kwargs):
        calls.append((kwargs.get("num_classes"), torch.empty(()).device.type))
        return real(name, **kwargs)

    monkeypatch.setattr(cdomain.models, "create_model", spy)

    def claim_many(document):
        document["args"]["num_classes"] = 1_000_000
        document["classes"] = []

    path = edit_header(saved, tmp_path / "many.safetensors", claim_many)
    refused(load_checkpoint, path, r"weights do not fit resnet_dct_small: .*\(1000000, 32\)")
    assert calls == [(1_000_000, "meta")]


def test_unknown_model_name(saved, tmp_path):
    path = edit_header(saved, tmp_path / "unknown.safetensors", lambda d: d.update(name="resnet_unheard_of"))
    refused(load_checkpoint, path, "unknown model 'resnet_unheard_of'")


def test_weights_of_the_wrong_shape(saved, tmp_path):
    def claim_four(document):
        document["args"]["num_classes"] = 4
        document["classes"] = ["a", "b", "c", "d"]

    path = edit_header(saved, tmp_path / "four.safetensors", claim_four)
    assert read_header(path).classes == ("a", "b", "c", "d")  # a valid header ...
    refused(load_checkpoint, path, r"weights do not fit resnet_dct_small: .* is \(10, 32\), expected \(4, 32\)")


@pytest.mark.parametrize("wrong", ["cdomain-1", None, 2])
@pytest.mark.parametrize("load", [load_checkpoint, read_header], ids=["load", "header"])
def test_wrong_format(saved, tmp_path, load, wrong):
    path = edit_header(saved, tmp_path / "format.safetensors", lambda d: d.update(format=wrong))
    refused(load, path, f"format {wrong!r}, expected {FORMAT!r}")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("load", [load_checkpoint, read_header], ids=["load", "header"])
def test_non_finite_float_argument(saved, tmp_path, load, value):
    path = edit_header(saved, tmp_path / "nan.safetensors", lambda d: d["args"].update(drop_rate=value))
    refused(load, path, "argument drop_rate=.* is out of range")


@pytest.mark.parametrize("names", [3, 11, 0])
@pytest.mark.parametrize("load", [load_checkpoint, read_header], ids=["load", "header"])
def test_class_name_count_must_match_num_classes(saved, tmp_path, load, names):
    path = edit_header(saved, tmp_path / "names.safetensors",
                       lambda d: d.update(classes=[f"c{i}" for i in range(names)]))
    if names == 0:  # no class names at all is allowed (a network trained without named classes)
        assert load(path) is not None
        return
    refused(load, path, f"num_classes 10 but {names} class names")


# ---------------------------------------------------------------------------- check_fits


def test_check_fits_accepts_the_matching_data(saved):
    check_fits(load_checkpoint(saved), CLASSES, "classification", "dct", "--init")
    check_fits(load_checkpoint(saved), CLASSES, "classification", None, "--init")


def test_check_fits_class_count(saved):
    with pytest.raises(CheckpointError, match="10 classes, the data has 2") as caught:
        check_fits(load_checkpoint(saved), ("cat", "dog"), "classification", "dct", "--init")
    assert str(saved) in str(caught.value) and "--init" in str(caught.value)


def test_check_fits_names_the_differing_class(saved):
    given = tuple("zebra" if i == 6 else name for i, name in enumerate(CLASSES))
    with pytest.raises(CheckpointError, match="class 6 is 'class6' there and 'zebra' in the data") as caught:
        check_fits(load_checkpoint(saved), given, "classification", "dct", "--resume")
    assert str(saved) in str(caught.value)


def test_check_fits_input_kind(saved):
    with pytest.raises(CheckpointError, match="reads dct input, not rgb"):
        check_fits(load_checkpoint(saved), CLASSES, "classification", "rgb", "--init")


def test_check_fits_density_network_for_classification(tmp_path):
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "density.safetensors", create_model("csrnet_dct_small", fbs=4, width=4))
    loaded = load_checkpoint(path)
    assert loaded.header.task == "density"
    check_fits(loaded, (), "density", "dct", "--init")  # fits counting data
    with pytest.raises(CheckpointError, match="a density network, but the data is for classification") as caught:
        check_fits(loaded, CLASSES, "classification", "dct", "--init")
    assert str(path) in str(caught.value)


def test_check_fits_codec(codec, tmp_path):  # noqa: F811  (the imported fixture)
    path = save_checkpoint(tmp_path / "codec.safetensors", codec)
    with pytest.raises(CheckpointError, match="a codec checkpoint, not a task network") as caught:
        check_fits(load_checkpoint(path), CLASSES, "classification", "latent", "--init")
    assert str(path) in str(caught.value)


# ---------------------------------------------------------------------------- hand-made tensors


def _write_raw(path: Path, model: torch.nn.Module, change) -> Path:
    """A checkpoint of ``model`` whose tensors (state dict plus statistics) pass through ``change``."""
    from safetensors.torch import save

    from cdomain.checkpoint import STATS_MEAN, STATS_STD, describe

    header, tensors = describe(model, classes=("a", "b", "c"))
    tensors[STATS_MEAN], tensors[STATS_STD] = torch.zeros(12), torch.ones(12)
    path.write_bytes(save(change(tensors), metadata={"cdomain": header.to_json()}))
    return path


def test_hand_made_tensors_load_unchanged(tmp_path):
    path = _write_raw(tmp_path / "raw.safetensors", small_model(num_classes=3), lambda tensors: tensors)
    assert load_checkpoint(path).stats.fbs == 4


def test_weights_of_the_wrong_dtype(tmp_path):
    def half(tensors):
        return {key: value.half() if value.is_floating_point() else value for key, value in tensors.items()}

    path = _write_raw(tmp_path / "half.safetensors", small_model(num_classes=3), half)
    refused(load_checkpoint, path, r"weights do not fit resnet_dct_small: .* is torch.float16, expected torch.float32")


def test_statistics_of_an_unreadable_dtype(tmp_path):
    from cdomain.checkpoint import STATS_MEAN

    def bfloat16_stats(tensors):
        return {**tensors, STATS_MEAN: tensors[STATS_MEAN].bfloat16()}

    path = _write_raw(tmp_path / "bf16.safetensors", small_model(num_classes=3), bfloat16_stats)
    refused(load_checkpoint, path, "malformed input statistics")


def test_statistics_of_the_wrong_size(tmp_path):
    from cdomain.checkpoint import STATS_MEAN, STATS_STD

    def six_channels(tensors):
        return {**tensors, STATS_MEAN: torch.zeros(6), STATS_STD: torch.ones(6)}

    path = _write_raw(tmp_path / "six.safetensors", small_model(num_classes=3), six_channels)
    refused(load_checkpoint, path, "input statistics have 6 channels, the model reads 12")
