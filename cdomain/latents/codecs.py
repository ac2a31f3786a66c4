"""Codec zoo: CompressAI hyperprior codecs built without weights, and local checkpoints.

Pretrained CompressAI weights are downloaded from a URL at run time, which cdomain never does.
Codecs are instead built untrained (``pretrained=False``) and then either trained here
(:mod:`cdomain.latents.codec_train`, ``cdomain-prepare codec``) or loaded from a local file:

- a checkpoint in CompressAI's published format: ``torch.save`` of the state dict (the
  ``*.pth.tar`` files of the model zoo), optionally wrapped as ``{"state_dict": ...}`` the way
  CompressAI's example training script saves it, with or without a ``module.`` prefix;
- a codec saved by :func:`save_codec`: a cdomain checkpoint (:mod:`cdomain.checkpoint`) of
  kind ``"codec"``, the format task networks use too.

Either way the entropy coder tables (``_quantized_cdf``, ``_offset``, ``_cdf_length`` and the
scale table) are resized to the saved ones by CompressAI's ``load_state_dict``, or computed with
``update()`` when the file has none, so a loaded codec can ``compress()`` at once.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save as save_safetensors

from cdomain.atomic import atomic_write
from cdomain.errors import CheckpointError
from cdomain.latents.compat import import_compressai

#: Architectures cdomain encodes with: CompressAI zoo names.
ARCHITECTURES = ("bmshj2018-hyperprior", "mbt2018-mean")

#: (N, M) per quality 1..8, as in CompressAI's zoo (``compressai.zoo.image.cfgs``).
CHANNELS = {
    "bmshj2018-hyperprior": {q: (128, 192) if q <= 5 else (192, 320) for q in range(1, 9)},
    "mbt2018-mean": {q: (128, 192) if q <= 4 else (192, 320) for q in range(1, 9)},
}

#: Levels of the Gaussian conditional's scale table (log-spaced over CompressAI's 0.11..256).
#: CompressAI uses 64; its coder rounds each predicted scale up to the next table entry (up to
#: 13% wider at 64 levels), which on briefly trained codecs made bitstreams 3-4% larger than the
#: likelihood estimate even at 256x256. 256 levels (3% steps) bring that under 2% at the cost of
#: 4x larger coder tables. The table is saved with the codec, so decoders use the same one.
SCALE_LEVELS = 256

#: Rate-distortion trade-off lambda of CompressAI's MSE-optimised models, quality 1..8
#: (loss = lambda * 255^2 * MSE + bpp; CompressAI documentation, "Training" / model zoo).
MSE_LAMBDAS = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.1800}


class CodecError(CheckpointError):
    """A codec file that cannot be used; the message names the file and the cause."""


def _classes() -> dict[str, type]:
    compressai = import_compressai()
    return {
        "bmshj2018-hyperprior": compressai.models.ScaleHyperprior,
        "mbt2018-mean": compressai.models.MeanScaleHyperprior,
    }


def _check(architecture: str, quality: int | None) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown codec architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}")
    if quality is not None and quality not in CHANNELS[architecture]:
        raise ValueError(f"codec quality must be in 1..8, got {quality!r}")


def build_codec(
    architecture: str = "bmshj2018-hyperprior",
    quality: int = 1,
    *,
    N: int | None = None,
    M: int | None = None,
) -> torch.nn.Module:
    """An untrained CompressAI codec of ``architecture`` at ``quality`` (1..8).

    ``N``/``M`` override the zoo's channel counts (e.g. a small codec for CPU tests); the
    latents then have M channels. The codec records its configuration in ``cdomain_config``.
    """
    _check(architecture, quality)
    zoo_n, zoo_m = CHANNELS[architecture][quality]
    n, m = int(N or zoo_n), int(M or zoo_m)
    model = _classes()[architecture](n, m)
    model.cdomain_config = {"architecture": architecture, "quality": int(quality), "N": n, "M": m}
    return model


def codec_config(model: torch.nn.Module) -> dict:
    """``{"architecture", "quality", "N", "M"}`` of a codec built or loaded by this module."""
    config = getattr(model, "cdomain_config", None)
    if config is None:
        raise ValueError("codec was not built by cdomain.latents (build_codec/load_codec); its configuration is unknown")
    return dict(config)


def latent_channels(model: torch.nn.Module) -> int:
    """M, the number of channels of ``y_hat`` and ``sigma_hat``."""
    return int(model.M)


def scale_table(levels: int = SCALE_LEVELS) -> torch.Tensor:
    """Log-spaced scales from CompressAI's minimum (0.11) to its maximum (256)."""
    from compressai.models.base import SCALES_MAX, SCALES_MIN, get_scale_table

    return get_scale_table(SCALES_MIN, SCALES_MAX, levels)


def refresh_entropy_tables(model: torch.nn.Module, levels: int = SCALE_LEVELS) -> torch.nn.Module:
    """Recompute the entropy coder tables from the current weights (needed after any training)."""
    import_compressai()
    model.update(scale_table=scale_table(levels), force=True)
    return model


def ensure_entropy_tables(model: torch.nn.Module) -> torch.nn.Module:
    """Compute the entropy coder tables only where the codec has none (keeps loaded ones)."""
    import_compressai()
    model.update(scale_table=scale_table(), force=False)
    return model


#: Buffers that hold the entropy coder tables (recomputable from the weights).
TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")


def codec_state(model: torch.nn.Module, *, tables: bool = True) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(codec_config, tensors)`` of ``model`` with fresh coder tables, for the checkpoint format.

    ``tables=False`` leaves the coder tables out (a smaller file; loading recomputes them with
    :data:`SCALE_LEVELS` levels).
    """
    refresh_entropy_tables(model)
    tensors = {name: value.detach().cpu().contiguous().clone() for name, value in model.state_dict().items()}
    if not tables:
        for name in tensors:
            if name.rsplit(".", 1)[-1] in TABLE_BUFFERS:
                tensors[name] = tensors[name].new_empty(0)
    return codec_config(model), tensors


def save_codec(
    path: str | os.PathLike[str], model: torch.nn.Module, *, info: dict | None = None, tables: bool = True
) -> Path:
    """Write ``model`` as a cdomain checkpoint (:mod:`cdomain.checkpoint`), atomically."""
    from cdomain.checkpoint import Header, save_checkpoint

    if tables:
        return save_checkpoint(path, model, info=info)
    config, tensors = codec_state(model, tables=False)
    args = {key: value for key, value in config.items() if key != "architecture"}
    header = Header("codec", config["architecture"], args, None, (), dict(info or {}))
    return atomic_write(path, save_safetensors(tensors, metadata={"cdomain": header.to_json()}))


def codec_from_state(path: Path, architecture: str, args: dict, state: dict) -> torch.nn.Module:
    """Build ``architecture`` with the stored N, M and load ``state`` (a checkpoint's tensors)."""
    import_compressai()
    try:
        _check(architecture, args.get("quality"))
        n, m = int(args["N"]), int(args["M"])
    except (KeyError, TypeError, ValueError) as error:
        raise CodecError(f"{path}: invalid codec arguments ({error})") from None
    if not (1 <= n <= 4096 and 1 <= m <= 4096):
        raise CodecError(f"{path}: codec channels N={n}, M={m} out of range")
    model = _classes()[architecture](n, m)
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError) as error:
        raise CodecError(f"{path}: weights do not fit {architecture} (N={n}, M={m}): {error}") from None
    ensure_entropy_tables(model)
    model.cdomain_config = {"architecture": architecture, "quality": args.get("quality"), "N": n, "M": m}
    return model.eval()


def save_compressai_checkpoint(path: str | os.PathLike[str], model: torch.nn.Module, *, wrap: bool = False) -> Path:
    """Write ``model``'s state dict the way CompressAI publishes it (``torch.save``), atomically.

    ``wrap`` stores ``{"state_dict": ...}`` as CompressAI's example training script does.
    """
    import io

    refresh_entropy_tables(model)
    state = {name: value.detach().cpu() for name, value in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({"state_dict": state} if wrap else state, buffer)
    return atomic_write(path, buffer.getvalue())


def load_codec(
    path: str | os.PathLike[str],
    *,
    architecture: str | None = None,
    quality: int | None = None,
    map_location: str | torch.device = "cpu",
) -> torch.nn.Module:
    """Load a codec from ``path`` (CompressAI ``.pth``/``.pth.tar`` or cdomain ``.safetensors``).

    For CompressAI files the architecture is inferred from the weights (the hyper-synthesis of
    ``mbt2018-mean`` predicts means and scales, 2M channels) unless given; ``quality`` is
    recorded if given (the file does not store it). The codec is returned in eval mode with its
    entropy coder tables ready for ``compress()``.
    """
    import_compressai()
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise FileNotFoundError(f"{path}: cannot read codec checkpoint: {error.strerror or error}") from error
    if _is_safetensors(data):
        from cdomain.checkpoint import load_checkpoint

        loaded = load_checkpoint(path)
        if loaded.header.kind != "codec":
            raise CodecError(f"{path}: a cdomain {loaded.header.task} model, not a codec")
        if architecture is not None and architecture != loaded.header.name:
            raise CodecError(f"{path}: a {loaded.header.name} codec, not {architecture}")
        model = loaded.model
        if quality is not None:
            model.cdomain_config["quality"] = quality
        return model.to(map_location).eval()
    state = _read_torch(path, data)  # torch.save: a zip archive, or a pickle for the legacy format
    architecture = architecture or _infer_architecture(path, state)
    _check(architecture, quality)
    try:
        n, m = int(state["g_a.0.weight"].size(0)), int(state["g_a.6.weight"].size(0))
    except KeyError as error:
        raise CodecError(f"{path}: not a hyperprior codec state dict (no {error.args[0]})") from None
    model = _classes()[architecture](n, m)
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError) as error:
        raise CodecError(f"{path}: weights do not fit {architecture} (N={n}, M={m}): {error}") from error
    ensure_entropy_tables(model)  # computes the coder tables only where the file had none
    model.cdomain_config = {"architecture": architecture, "quality": quality, "N": n, "M": m}
    return model.to(map_location).eval()


def _is_safetensors(data: bytes) -> bool:
    """safetensors files start with an 8-byte header length and a JSON header."""
    if len(data) < 10:
        return False
    size = int.from_bytes(data[:8], "little")
    return 2 <= size <= len(data) - 8 and data[8:9] == b"{"


def _read_torch(path: Path, data: bytes) -> dict:
    import io

    from compressai.zoo.pretrained import load_pretrained  # noqa: F401  (compressai is imported above)

    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or unsafe pickles
        raise CodecError(f"{path}: not a readable PyTorch checkpoint ({error})") from error
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CodecError(f"{path}: expected a state dict (or {{'state_dict': ...}}) of tensors")
    return load_pretrained(dict(loaded))  # strips "module.", renames old entropy-bottleneck keys


def _infer_architecture(path: Path, state: dict) -> str:
    try:
        m, hs_out = state["g_a.6.weight"].size(0), state["h_s.4.weight"].size(0)
    except KeyError as error:
        raise CodecError(f"{path}: not a hyperprior codec state dict (no {error.args[0]})") from None
    if hs_out == m:
        return "bmshj2018-hyperprior"
    if hs_out == 2 * m:
        return "mbt2018-mean"
    raise CodecError(f"{path}: h_s predicts {hs_out} channels for M={m}; not bmshj2018-hyperprior or mbt2018-mean")
