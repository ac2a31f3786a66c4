"""H.264 as a second codec: encode frame sequences with libx264, decode them, sweep CRF values.

The compression-impact studies compare JPEG with H.264 (libx264 at CRF 23, 25, 30, 40, 50:
lower CRF, higher quality). cdomain encodes through PyAV (``pip install 'cdomain[video]'``),
whose wheels bundle FFmpeg built with libx264, so the codec installs with pip from the
project's own dependency list on every platform PyPI serves; the ``ffmpeg`` binary would need
a system package manager and a subprocess per clip.

- :func:`encode_frames`: RGB frames ``[T, H, W, 3]`` -> one H.264 Annex-B elementary stream
  (4:2:0, ``preset`` and ``crf`` as given, one thread so the bytes are reproducible). The
  stream holds the parameter sets in-band and no container, so its length is the real coded
  size: :attr:`EncodedClip.bits_per_pixel` is ``8 * bytes / (T * H * W)``. libx264's
  informational SEI message (its version and options, ~700 bytes per stream) is removed
  (:func:`strip_sei`): decoders ignore it, and on short small clips it would dominate the rate.
- :func:`decode_frames`: the stream back to RGB frames.
- :func:`h264_sweep`: a classifier (RGB input) evaluated on the decoded frames of the embedded
  clip set (:mod:`cdomain.data.clips`) at each CRF, reported as :class:`SweepPoint` rows, the
  output format of the JPEG sweep: ``quality`` holds the CRF, ``mean_bytes`` the mean coded
  bytes per frame, ``bits_per_pixel`` the real rate; the ``None`` row is the uncompressed frames.

Even at CRF 0 the frames pass through 4:2:0 YCbCr (libswscale), so they are not the originals.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from cdomain.errors import CheckpointError, ConfigError

__all__ = ["DEFAULT_CRFS", "EncodedClip", "decode_frames", "encode_frames", "h264_available", "h264_sweep",
           "plot_h264", "run_h264_sweep"]

#: The CRF values of the JPEG/H.264 compression-impact study.
DEFAULT_CRFS = (23, 25, 30, 40, 50)
#: libx264's CRF range (8-bit).
CRF_RANGE = (0, 51)


@dataclass(frozen=True)
class EncodedClip:
    """An H.264 elementary stream and the size of the frames it codes."""

    data: bytes
    frames: int
    height: int
    width: int

    @property
    def bits_per_pixel(self) -> float:
        return 8 * len(self.data) / (self.frames * self.height * self.width)

    @property
    def bytes_per_frame(self) -> float:
        return len(self.data) / self.frames


def _av():
    """The PyAV module, with libx264; ConfigError (naming ``--codec``) when either is missing."""
    try:
        import av
    except ImportError:
        raise ConfigError("--codec", "h264 needs PyAV, whose wheels bundle libx264: "
                                     "pip install 'cdomain[video]'") from None
    try:
        av.codec.Codec("libx264", "w")
    except Exception:  # PyAV's UnknownCodecError (its name moved between versions)
        raise ConfigError("--codec", f"this PyAV ({av.__version__}) has no libx264 encoder") from None
    return av


def h264_available() -> bool:
    """Whether PyAV with a libx264 encoder can be imported here."""
    try:
        _av()
    except ConfigError:
        return False
    return True


def encode_frames(frames: np.ndarray, crf: int, *, preset: str = "medium", fps: int = 25) -> EncodedClip:
    """Encode uint8 RGB ``frames`` ``[T, H, W, 3]`` (even H and W) with libx264 at ``crf``."""
    av = _av()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 [T, H, W, 3] with T >= 1, got {frames.dtype} {frames.shape}")
    count, height, width = frames.shape[:3]
    if height % 2 or width % 2:
        raise ValueError(f"4:2:0 video needs even frame sides, got {height}x{width}")
    if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not CRF_RANGE[0] <= crf <= CRF_RANGE[1]:
        raise ValueError(f"crf must be an int in {CRF_RANGE[0]}..{CRF_RANGE[1]}, got {crf!r}")
    from fractions import Fraction

    context = av.CodecContext.create("libx264", "w")
    context.width, context.height, context.pix_fmt = width, height, "yuv420p"
    context.time_base = Fraction(1, fps)
    context.framerate = Fraction(fps, 1)
    context.options = {"crf": str(int(crf)), "preset": preset, "threads": "1"}
    out = io.BytesIO()
    for index, pixels in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        for packet in context.encode(frame):
            out.write(bytes(packet))
    for packet in context.encode(None):
        out.write(bytes(packet))
    return EncodedClip(strip_sei(out.getvalue()), count, height, width)


def strip_sei(stream: bytes) -> bytes:
    """``stream`` (Annex B) without its SEI NAL units (type 6).

    libx264 writes its version and every encoder option as an SEI message of about 700 bytes
    into each stream: no picture data, ignored by decoders, but 80% of a short 64x64 clip at
    CRF 50. Dropping it leaves the stream the decoder reads and the size the rate should count.
    A 4-byte start code's leading zero ends the previous unit (a trailing zero byte), so cutting
    at 3-byte start codes keeps every remaining unit intact.
    """
    starts = [match.start() for match in re.finditer(b"\x00\x00\x01", stream)]
    if not starts:
        return stream
    kept = [stream[:starts[0]]]
    for start, end in zip(starts, starts[1:] + [len(stream)]):
        if start + 3 < len(stream) and stream[start + 3] & 0x1F != 6:
            kept.append(stream[start:end])
    return b"".join(kept)


def decode_frames(clip: EncodedClip | bytes) -> np.ndarray:
    """Decode an H.264 elementary stream to uint8 RGB frames ``[T, H, W, 3]``."""
    av = _av()
    data = clip.data if isinstance(clip, EncodedClip) else bytes(clip)
    context = av.CodecContext.create("h264", "r")
    decoded = []
    try:
        for packet in [*context.parse(data), *context.parse(None)]:  # parse(None) flushes the last packet
            decoded.extend(context.decode(packet))
        decoded.extend(context.decode(None))
    except av.error.FFmpegError as error:
        raise ValueError(f"undecodable H.264 stream ({error})") from None
    if not decoded:
        raise ValueError("the H.264 stream holds no frames")
    return np.stack([frame.to_ndarray(format="rgb24") for frame in decoded])


# ---------------------------------------------------------------------------------------------
# The sweep.


def _evaluate_frames(checkpoint, frames: np.ndarray, labels: np.ndarray, batch_size: int, device) -> dict:
    """Accuracy and loss of an RGB classifier on uint8 frames ``[N, H, W, 3]`` with ``labels``."""
    from cdomain.data.loader import pixels_to_channels
    from cdomain.train.engine import evaluate, task_of_model

    batches = []
    for start in range(0, len(frames), batch_size):
        chunk = frames[start:start + batch_size]
        inputs = torch.from_numpy(np.stack([pixels_to_channels(f, checkpoint.stats) for f in chunk]))
        batches.append((inputs, torch.as_tensor(labels[start:start + batch_size], dtype=torch.long)))
    return evaluate(checkpoint.model, task_of_model(checkpoint.input_spec.task), batches, device)


def check_h264_checkpoint(checkpoint, classes: Sequence[str]) -> None:
    """CheckpointError unless ``checkpoint`` is a classifier on RGB input for ``classes``."""
    from cdomain.checkpoint import check_fits

    check_fits(checkpoint, tuple(classes), "classification", None, "checkpoint")
    if checkpoint.input_spec.input != "rgb":
        raise CheckpointError(f"checkpoint {checkpoint.path}: H.264 sweeps evaluate networks on decoded pixels "
                              f"(--input rgb); this one reads {checkpoint.input_spec.input} input")


def h264_sweep(checkpoints: dict[str, Any], clips, crfs: Sequence[int] = DEFAULT_CRFS, *, preset: str = "medium",
               batch_size: int = 64, device: torch.device = torch.device("cpu"), include_original: bool = True,
               progress: Callable | None = None) -> list:
    """Evaluate every checkpoint on ``clips`` (a :class:`~cdomain.data.clips.ClipSet`) encoded
    at each CRF; returns :class:`~cdomain.evaluate.sweep.SweepPoint` rows (``quality`` = CRF)."""
    from cdomain.evaluate.sweep import SweepPoint

    for checkpoint in checkpoints.values():
        check_h264_checkpoint(checkpoint, clips.classes)
    count, frames_per_clip, height, width = clips.frames.shape[:4]
    labels = np.repeat(clips.labels, frames_per_clip)
    levels: list[int | None] = ([None] if include_original else []) + list(crfs)
    points = []
    for crf in levels:
        if crf is None:
            decoded, mean_bytes, bpp = clips.frames, float(height * width * 3), 24.0
        else:
            encoded = [encode_frames(clip, crf, preset=preset) for clip in clips.frames]
            decoded = np.stack([decode_frames(clip) for clip in encoded])
            if decoded.shape != clips.frames.shape:
                raise ValueError(f"decoded frames {decoded.shape} differ from the encoded {clips.frames.shape}")
            total = sum(len(clip.data) for clip in encoded)
            mean_bytes = total / (count * frames_per_clip)
            bpp = 8 * total / (count * frames_per_clip * height * width)
        flat = decoded.reshape(-1, height, width, 3)
        for name, checkpoint in checkpoints.items():
            result = _evaluate_frames(checkpoint, flat, labels, batch_size, device)
            point = SweepPoint(name, crf, "accuracy", result["acc"], result["loss"], mean_bytes, bpp, result["images"])
            points.append(point)
            if progress is not None:
                progress(point)
    return points


def plot_h264(points: list) -> bytes:
    """PNG bytes: accuracy against CRF (left) and against real bits per pixel (right)."""
    from cdomain.evaluate.sweep import png_bytes, pyplot

    figure, (by_crf, by_bpp) = pyplot().subplots(1, 2, figsize=(10, 4.2), dpi=120)
    for name in dict.fromkeys(point.checkpoint for point in points):
        curve = sorted((p for p in points if p.checkpoint == name and p.quality is not None), key=lambda p: p.quality)
        by_crf.plot([p.quality for p in curve], [p.value for p in curve], marker="o", label=name)
        by_bpp.plot([p.bits_per_pixel for p in curve], [p.value for p in curve], marker="o", label=name)
        for p in curve:
            by_bpp.annotate(f"crf{p.quality}", (p.bits_per_pixel, p.value), fontsize=7, xytext=(3, -9),
                            textcoords="offset points")
    by_crf.set_xlabel("H.264 CRF (libx264; higher = stronger compression)")
    by_bpp.set_xlabel("bits per pixel (real H.264 stream size)")
    by_bpp.set_xscale("log")
    for axes in (by_crf, by_bpp):
        axes.set_ylabel("accuracy (%)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle("accuracy vs H.264 compression")
    return png_bytes(figure)


def crf_list(text: str) -> tuple[int, ...]:
    """``"23,25,30"`` as CRF values in 0..51 (the ``--crf`` flag's type)."""
    import argparse

    try:
        values = tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated CRF values, got {text!r}") from None
    if not values or any(not CRF_RANGE[0] <= v <= CRF_RANGE[1] for v in values):
        raise argparse.ArgumentTypeError(f"CRF values must be in {CRF_RANGE[0]}..{CRF_RANGE[1]}, got {text!r}")
    return values


def run_h264_sweep(args) -> dict:
    """``cdomain-eval --codec h264``: the CRF sweep of ``args.checkpoints`` on a clip set."""
    from cdomain.checkpoint import load_checkpoint
    from cdomain.cli.eval import claim_output, label_checkpoints
    from cdomain.data.registry import open_clips
    from cdomain.evaluate.sweep import write_results
    from cdomain.train.device import resolve_device

    if args.batch_size < 1:
        raise ConfigError("--batch-size", f"must be >= 1, got {args.batch_size}")
    _av()
    device = resolve_device(args.device)
    checkpoints = {name: load_checkpoint(path) for name, path in label_checkpoints(args.checkpoints).items()}
    clips = open_clips(args.data or "clips")
    for checkpoint in checkpoints.values():
        check_h264_checkpoint(checkpoint, clips.classes)
    output = claim_output(args.output, args.overwrite)

    def show(point) -> None:
        level = "orig" if point.quality is None else f"crf{point.quality}"
        print(f"{point.checkpoint:>24} {level:>6}  accuracy {point.value:6.2f}%  {point.mean_bytes:9.0f} B/frame  "
              f"{point.bits_per_pixel:6.3f} bpp", flush=True)

    points = h264_sweep(checkpoints, clips, args.crf, batch_size=args.batch_size, device=device, progress=show)
    written = write_results(points, output, figure=plot_h264(points))
    print(f"wrote {', '.join(str(path) for path in written.values())}")
    return {"points": points, "written": written, "metric": "accuracy"}
