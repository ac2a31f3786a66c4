"""Codec zoo, CompressAI-format checkpoints (plain, wrapped, DataParallel, old key names), saving."""

from __future__ import annotations

import io

import pytest
import torch

from tests.latents import require_compressai

require_compressai()

from cdomain.latents.codecs import (  # noqa: E402
    CHANNELS,
    MSE_LAMBDAS,
    CodecError,
    build_codec,
    load_codec,
    save_codec,
    save_compressai_checkpoint,
)
from cdomain.latents.encode import compress, decompress, encode  # noqa: E402
from tests.latents.conftest import photos  # noqa: E402


def test_zoo_channels_and_lambdas_match_compressai():
    from compressai.zoo.image import cfgs

    for architecture in CHANNELS:
        for quality in range(1, 9):
            assert CHANNELS[architecture][quality] == cfgs[architecture][quality]
    assert MSE_LAMBDAS == {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.1800}


@pytest.mark.parametrize("quality,expected", [(1, (128, 192)), (5, (128, 192)), (6, (192, 320)), (8, (192, 320))])
def test_build_hyperprior_at_quality(quality, expected):
    model = build_codec("bmshj2018-hyperprior", quality)
    assert (model.N, model.M) == expected
    assert model.cdomain_config == {"architecture": "bmshj2018-hyperprior", "quality": quality,
                                    "N": expected[0], "M": expected[1]}


def test_build_rejects_bad_arguments():
    with pytest.raises(ValueError, match="1..8"):
        build_codec("bmshj2018-hyperprior", 9)
    with pytest.raises(ValueError, match="unknown codec architecture"):
        build_codec("cheng2020-anchor", 1)


def _small(architecture="bmshj2018-hyperprior"):
    torch.manual_seed(0)
    return build_codec(architecture, 3, N=8, M=12).eval()


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("variant", ["plain", "wrapped", "dataparallel", "old_keys", "no_tables"])
def test_load_compressai_checkpoint(tmp_path, variant):
    model = _small()
    model.update(force=True)  # fills _quantized_cdf/_offset/_cdf_length: loading must resize them
    state = {key: value.clone() for key, value in model.state_dict().items()}
    if variant == "no_tables":
        state = _small().state_dict()  # never updated: empty coder buffers, computed on load
    if variant == "dataparallel":
        state = {f"module.{key}": value for key, value in state.items()}
    if variant == "old_keys":  # CompressAI < 1.1 stored the bottleneck as ParameterLists: _biases.0 -> _bias0
        renamed = {}
        for key, value in state.items():
            for new, old in (("biases.", "_bias"), ("matrices.", "_matrix"), ("factors.", "_factor")):
                if key.startswith(f"entropy_bottleneck.{new}"):
                    key = f"entropy_bottleneck.{old}{key.rsplit('.', 1)[1]}"
            renamed[key] = value
        state = renamed
    payload = {"epoch": 3, "state_dict": state, "loss": 1.0} if variant == "wrapped" else state
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(payload, path)
    loaded = load_codec(path, quality=3)
    assert loaded.cdomain_config == {"architecture": "bmshj2018-hyperprior", "quality": 3, "N": 8, "M": 12}
    if variant != "no_tables":
        _same_weights(model, loaded)
    images = photos(2, 64)
    compressed = compress(loaded, images)
    assert decompress(loaded, compressed).shape == images.shape
    assert torch.equal(encode(loaded, images).y_hat, encode(model, images).y_hat)


def test_load_infers_mbt2018_mean(tmp_path):
    model = _small("mbt2018-mean")
    path = save_compressai_checkpoint(tmp_path / "mbt.pth.tar", model, wrap=True)
    loaded = load_codec(path)
    assert loaded.cdomain_config["architecture"] == "mbt2018-mean"
    assert type(loaded).__name__ == "MeanScaleHyperprior"
    images = photos(1, 64)
    assert decompress(loaded, compress(loaded, images)).shape == images.shape


@pytest.mark.parametrize("tables", [True, False])
def test_safetensors_round_trip(tmp_path, codec, tables):
    path = save_codec(tmp_path / "codec.safetensors", codec, info={"note": "x"}, tables=tables)
    loaded = load_codec(path)
    assert loaded.cdomain_config == codec.cdomain_config
    _same_weights(codec, loaded)  # coder tables recomputed on load equal the saved ones
    assert not list(tmp_path.glob(".*.tmp"))


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth.tar"):
        load_codec(tmp_path / "missing.pth.tar")
    junk = tmp_path / "junk.pth.tar"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CodecError, match="junk.pth.tar"):
        load_codec(junk)
    buffer = io.BytesIO()
    torch.save({"conv.weight": torch.zeros(3)}, buffer)
    other = tmp_path / "other.pth.tar"
    other.write_bytes(buffer.getvalue())
    with pytest.raises(CodecError, match="not a hyperprior codec"):
        load_codec(other)


def test_legacy_and_foreign_safetensors_are_refused_naming_the_file(tmp_path, codec):
    import json

    from safetensors.torch import save as save_safetensors

    from cdomain.checkpoint import read_header
    from cdomain.errors import CheckpointError
    from cdomain.latents.codecs import codec_state

    config, tensors = codec_state(codec)
    # the retired "cdomain-codec-1" layout: metadata entries format/codec/info, no "cdomain" header
    legacy = tmp_path / "legacy.safetensors"
    legacy.write_bytes(save_safetensors(tensors, metadata={"format": "cdomain-codec-1", "codec": json.dumps(config),
                                                           "info": "{}"}))
    with pytest.raises(CheckpointError, match="legacy.safetensors.*not a cdomain checkpoint"):
        load_codec(legacy)
    # a "cdomain" header of another format
    header = json.dumps({"format": "cdomain-codec-1", "kind": "codec", "name": config["architecture"],
                         "args": {k: v for k, v in config.items() if k != "architecture"}})
    old = tmp_path / "old-format.safetensors"
    old.write_bytes(save_safetensors(tensors, metadata={"cdomain": header}))
    with pytest.raises(CheckpointError, match="old-format.safetensors.*format 'cdomain-codec-1'"):
        load_codec(old)
    # a cdomain task network is not a codec
    from cdomain.checkpoint import save_checkpoint
    from cdomain.models import create_model

    network = save_checkpoint(tmp_path / "network.safetensors", create_model("cresnet_small", latent_channels=24))
    with pytest.raises(CodecError, match="network.safetensors.*not a codec"):
        load_codec(network)
    # what save_codec writes is the one checkpoint format
    saved = read_header(save_codec(tmp_path / "codec.safetensors", codec, info={"note": "x"}))
    assert saved.kind == "codec" and saved.name == "bmshj2018-hyperprior" and saved.info == {"note": "x"}
    assert saved.args == {"quality": config["quality"], "N": 16, "M": 24}
