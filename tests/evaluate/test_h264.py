"""H.264 through PyAV's bundled libx264: encode, decode, real rate, and the CRF sweep from the CLI.

Skipped only where PyAV with a libx264 encoder is not installed (``pip install 'cdomain[video]'``;
the ``test`` extra installs it).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from cdomain.data.clips import render_clip
from cdomain.evaluate.h264 import decode_frames, encode_frames, h264_available, strip_sei

pytestmark = pytest.mark.skipif(not h264_available(), reason="PyAV with a libx264 encoder is not installed")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


@pytest.fixture(scope="module")
def clip():
    frames, _ = render_clip(3, 11, size=48, frames=6, max_step=2)  # ripples: fine detail
    return frames


def _nal_types(stream: bytes) -> list[int]:
    positions = [i for i in range(len(stream) - 3) if stream[i:i + 3] == b"\x00\x00\x01"]
    return [stream[i + 3] & 0x1F for i in positions]


def test_round_trip_keeps_every_frame_and_quality_falls_with_crf(clip):
    results = {}
    for crf in (0, 23, 40, 51):
        encoded = encode_frames(clip, crf)
        decoded = decode_frames(encoded)
        assert decoded.shape == clip.shape and decoded.dtype == np.uint8
        results[crf] = (_psnr(decoded, clip), encoded.bits_per_pixel)
        assert encoded.bits_per_pixel == pytest.approx(8 * len(encoded.data) / (6 * 48 * 48))
    assert results[0][0] > 38  # only 4:2:0 conversion left
    psnrs, rates = [results[c][0] for c in (0, 23, 40, 51)], [results[c][1] for c in (0, 23, 40, 51)]
    assert psnrs == sorted(psnrs, reverse=True) and rates == sorted(rates, reverse=True)
    assert psnrs[-1] < psnrs[0] - 10 and rates[-1] < rates[0] / 10


def test_stream_is_annex_b_h264_without_sei_and_reproducible(clip):
    encoded = encode_frames(clip, 30)
    types = _nal_types(encoded.data)
    assert types[:2] == [7, 8] and 5 in types  # SPS, PPS, then an IDR slice
    assert 6 not in types
    assert encode_frames(clip, 30).data == encoded.data


def test_strip_sei_by_hand():
    sps, sei, idr = b"\x00\x00\x00\x01\x67\xaa", b"\x00\x00\x00\x01\x06\x05\x01\x00", b"\x00\x00\x01\x65\xbb\xcc"
    # the SEI's 4-byte start code leaves its leading zero behind the SPS (a trailing zero byte)
    assert strip_sei(sps + sei + idr) == sps + b"\x00" + idr
    assert strip_sei(sps + idr) == sps + idr
    assert strip_sei(b"no start code") == b"no start code"


def test_bad_input_is_refused(clip):
    with pytest.raises(ValueError, match="even"):
        encode_frames(clip[:, :47], 23)
    with pytest.raises(ValueError, match="crf"):
        encode_frames(clip, 52)
    with pytest.raises(ValueError, match="uint8"):
        encode_frames(clip.astype(np.float32), 23)
    with pytest.raises(ValueError, match="H.264"):
        decode_frames(b"\x00\x00\x01\x09garbage")


def test_cli_sweeps_crf_with_the_jpeg_output_format(tmp_path, capsys):
    from cdomain.cli.eval import main as eval_main
    from cdomain.train import TrainConfig, run

    common = dict(data="textures-tiny", epochs=1, batch_size=16, quiet=True, stats_images=8)
    run(TrainConfig(input="rgb", output=str(tmp_path / "rgb"), **common))
    checkpoint = str(tmp_path / "rgb" / "model.safetensors")
    assert eval_main([checkpoint, "--codec", "h264", "--data", "clips-tiny", "--crf", "23,51",
                      "--output", str(tmp_path / "sweep")]) == 0
    rows = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [row["quality"] for row in rows] == [None, 23, 51]
    assert {row["metric"] for row in rows} == {"accuracy"} and all(row["images"] == 40 for row in rows)
    assert rows[0]["bits_per_pixel"] == 24.0 and rows[1]["bits_per_pixel"] > rows[2]["bits_per_pixel"] > 0
    csv_header = (tmp_path / "sweep" / "sweep.csv").read_text().splitlines()[0]
    assert csv_header == "checkpoint,quality,metric,value,loss,mean_bytes,bits_per_pixel,images,skipped,mse,transcoded,top5,coarse_accuracy"
    assert (tmp_path / "sweep" / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert "crf51" in capsys.readouterr().out
    # DCT networks read JPEG coefficients, which decoded video frames do not have
    run(TrainConfig(input="dct", output=str(tmp_path / "dct"), **common))
    assert eval_main([str(tmp_path / "dct" / "model.safetensors"), "--codec", "h264", "--data", "clips-tiny",
                      "--output", str(tmp_path / "bad")]) == 2
    assert "--input rgb" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        eval_main([checkpoint, "--codec", "h264", "--crf", "60"])
