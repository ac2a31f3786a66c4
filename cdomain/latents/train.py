"""The latent path of ``cdomain-train``: cResNet on cached latents (frozen codec) or joint tuning.

``run_latent_training(config)`` takes the resolved options as a dict (the keys of
:data:`DEFAULTS`; ``cdomain-train``'s flags where they overlap) and writes the same outputs as
the DCT path: ``config.yaml``, ``metrics.jsonl``, ``model.safetensors``/``best.safetensors`` and
``summary.json``, plus for ``mode="joint"`` the fine-tuned codec ``codec.safetensors`` (and
``best-codec.safetensors``), saved atomically after every epoch with current coder tables.

``mode="standard"``: the codec is frozen; the data set is encoded once into a latent cache
(``cache``, default ``OUTPUT/latents``; resumable, reused by later runs with the same codec) and
the network trains on :class:`~cdomain.latents.loader.LatentLoader` batches.
``mode="joint"``: the encoder side of the codec trains with the network
(:func:`cdomain.latents.joint.fit_joint`) on images, loss = CE + ``lambda_rate`` * bpp.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
import yaml

from cdomain.atomic import atomic_write
from cdomain.data.embedded import EMBEDDED, embedded_dataset, embedded_root
from cdomain.latents.cache import write_latents
from cdomain.latents.codecs import load_codec, save_codec
from cdomain.latents.images import ImageLoader
from cdomain.latents.joint import JointConfig, fit_joint
from cdomain.latents.loader import CROP, RESIZE, LatentLoader
from cdomain.models import create_model
from cdomain.train.checkpoint import save_checkpoint
from cdomain.train.engine import OptimConfig, fit

MODES = ("standard", "joint")

#: Options of the latent path and their defaults.
DEFAULTS = {
    "data": "textures",  # embedded dataset or folder with train/ and val/
    "codec": None,  # codec file (cdomain-prepare codec, or CompressAI .pth.tar); required
    "cache": None,  # latent cache folder (standard mode); default OUTPUT/latents
    "model": "cresnet39",
    "model_args": {},  # extra registry arguments, e.g. {"adapt": "upsample"}
    "mode": "standard",
    "epochs": 30,
    "batch_size": 64,
    "optimizer": "sgd",
    "lr": 0.05,
    "weight_decay": 5e-4,
    "warmup_epochs": 1.0,
    "resize": RESIZE,  # latent augmentation: resize, then crop (random in training)
    "crop": CROP,
    "lambda_rate": 0.01,  # joint: weight of bpp
    "lambda_dist": 0.0,  # joint: weight of 255^2 * MSE through g_s
    "codec_lr": 1e-4,  # joint: Adam on the encoder side
    "bitstreams": True,  # measure real bpp (compress) on validation data
    "workers": 0,
    "seed": 0,
    "device": "auto",
    "output": None,  # default runs/<time>-<model>-latent-<mode>
    "quiet": False,
}


class LatentUsageError(ValueError):
    """A latent-training option the user can fix."""


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LatentUsageError(f"device {name}: CUDA is not available on this machine")
    return device


def _check_data(data: str) -> str:
    embedded = data in EMBEDDED and not Path(data).exists()
    if embedded and not embedded_root(data).is_dir():
        print(f"generating the embedded dataset {data!r} into {embedded_root(data)} (once)", flush=True)
        embedded_dataset(data)
    if not embedded and not all((Path(data) / split).is_dir() for split in ("train", "val")):
        raise LatentUsageError(f"data {data}: expected an embedded dataset name or a folder with train/ and val/")
    return data


def build_latent_loaders(
    codec: torch.nn.Module,
    data: str,
    cache: str | Path,
    *,
    batch_size: int = 64,
    resize: int | None = RESIZE,
    crop: int | None = CROP,
    seed: int = 0,
    workers: int = 0,
    bitstreams: bool = True,
    codec_path: str | None = None,
    progress: bool = True,
) -> tuple[LatentLoader, LatentLoader]:
    """Encode ``data`` (train and val) into ``cache`` if needed, then return the two loaders.

    Training batches are augmented (random crop and flip) and the last incomplete one dropped;
    validation batches are centre-cropped. Real bpp is measured for the validation split only
    (``bitstreams``), the likelihood estimate for both.
    """
    data = _check_data(data)
    cache = Path(cache)
    for split in ("train", "val"):
        write_latents(codec, data, cache / split, split=split, bitstreams=bitstreams and split == "val",
                      codec_path=codec_path, progress=progress)
    common = dict(batch_size=batch_size, resize=resize, crop=crop, seed=seed, workers=workers)
    train = LatentLoader(cache / "train", augment=True, **common)
    train.drop_last = len(train.cache) >= batch_size  # no ragged last batch, unless that is all there is
    val = LatentLoader(cache / "val", augment=False, **common)
    if train.classes != val.classes:
        raise LatentUsageError(f"data {data}: train and val have different classes")
    return train, val


def run_latent_training(config: dict) -> dict:
    """Train a latent classifier as configured (keys of :data:`DEFAULTS`); returns the summary."""
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise LatentUsageError(f"unknown latent training option(s): {', '.join(unknown)}")
    cfg = {**DEFAULTS, **{key: value for key, value in config.items() if value is not None or key in ("resize", "crop")}}
    if cfg["mode"] not in MODES:
        raise LatentUsageError(f"mode must be one of {', '.join(MODES)}, got {cfg['mode']!r}")
    if cfg["codec"] is None:
        raise LatentUsageError("latent input needs a codec file: train one with 'cdomain-prepare codec' "
                               "or pass a local CompressAI .pth.tar")
    torch.manual_seed(cfg["seed"])
    device = _device(cfg["device"])
    progress = not cfg["quiet"] and sys.stderr.isatty()
    output = Path(cfg["output"] or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg['model']}-latent-{cfg['mode']}")
    output.mkdir(parents=True, exist_ok=True)
    codec = load_codec(cfg["codec"])
    latent_channels = int(codec.M)
    data = _check_data(cfg["data"])

    if cfg["mode"] == "standard":
        cache = Path(cfg["cache"] or output / "latents")
        train, val = build_latent_loaders(codec, data, cache, batch_size=cfg["batch_size"], resize=cfg["resize"],
                                          crop=cfg["crop"], seed=cfg["seed"], workers=cfg["workers"],
                                          bitstreams=cfg["bitstreams"], codec_path=str(cfg["codec"]), progress=progress)
        bpp = val.bpp
    else:
        common = dict(batch_size=cfg["batch_size"], seed=cfg["seed"], workers=cfg["workers"])
        train = ImageLoader(data, split="train", augment=True, **common)
        train.drop_last = len(train.samples) >= cfg["batch_size"]
        val = ImageLoader(data, split="val", augment=False, **common)
        bpp = {}
    try:
        model = create_model(cfg["model"], num_classes=train.num_classes, latent_channels=latent_channels,
                             **cfg["model_args"])
    except ValueError as error:
        raise LatentUsageError(f"model {cfg['model']}: {error}") from None
    if model.input_spec["input"] != "latent":
        raise LatentUsageError(f"model {cfg['model']} reads {model.input_spec['input']} input, not latents")
    print(f"data: {data} ({len(train.dataset)} train / {len(val.dataset)} val, {train.num_classes} classes); "
          f"codec {cfg['codec']} (M={latent_channels}); model {cfg['model']}, mode {cfg['mode']}, on {device}", flush=True)

    resolved = {key: (str(value) if isinstance(value, Path) else value) for key, value in cfg.items()}
    resolved["output"] = str(output)
    atomic_write(output / "config.yaml", yaml.safe_dump(resolved, sort_keys=True))
    metrics_path = output / "metrics.jsonl"
    metrics_path.write_text("")
    best = {"val_acc": -1.0, "epoch": 0}
    info = {"data": data, "codec": str(cfg["codec"]), "mode": cfg["mode"], "seed": cfg["seed"]}

    def on_epoch_end(epoch: int, record: dict) -> None:
        record = {**record, **({"val_bpp": bpp.get("bpp"), "val_likelihood_bpp": bpp.get("likelihood_bpp")} if bpp else {})}
        with metrics_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        epoch_info = {**info, "epoch": epoch}
        save_checkpoint(output / "model.safetensors", model, classes=train.classes, info=epoch_info)
        if cfg["mode"] == "joint":
            save_codec(output / "codec.safetensors", codec, info=epoch_info)
        if record["val_acc"] > best["val_acc"]:
            best.update(val_acc=record["val_acc"], epoch=epoch, val_bpp=record.get("val_bpp"))
            save_checkpoint(output / "best.safetensors", model, classes=train.classes, info=epoch_info)
            if cfg["mode"] == "joint":
                save_codec(output / "best-codec.safetensors", codec, info=epoch_info)
        real = record.get("val_bpp")
        print(f"epoch {epoch:3d}/{cfg['epochs']}  train loss {record['train_loss']:.3f} acc {record['train_acc']:5.1f}%  "
              f"val acc {record['val_acc']:5.1f}%  bpp {real if real is None else round(real, 4)}  "
              f"{record['seconds']:.1f}s", flush=True)

    start = time.perf_counter()
    optim = OptimConfig(optimizer=cfg["optimizer"], lr=cfg["lr"], weight_decay=cfg["weight_decay"],
                        warmup_epochs=cfg["warmup_epochs"])
    if cfg["mode"] == "standard":
        history = fit(model, train, val, epochs=cfg["epochs"], optim=optim, device=device, progress=progress,
                      on_epoch_end=on_epoch_end)
    else:
        joint = JointConfig(lambda_rate=cfg["lambda_rate"], lambda_dist=cfg["lambda_dist"], codec_lr=cfg["codec_lr"],
                            resize=cfg["resize"], crop=cfg["crop"], seed=cfg["seed"], bitstreams=cfg["bitstreams"])
        history = fit_joint(codec, model, train, val, epochs=cfg["epochs"], optim=optim, config=joint, device=device,
                            progress=progress, on_epoch_end=on_epoch_end)
    final = history[-1]
    summary = {
        "seconds": round(time.perf_counter() - start, 1),
        "mode": cfg["mode"],
        "final_val_acc": final["val_acc"],
        "final_val_bpp": final.get("val_bpp", bpp.get("bpp")),
        "final_val_likelihood_bpp": final.get("val_likelihood_bpp", bpp.get("likelihood_bpp")),
        "best_val_acc": best["val_acc"],
        "best_epoch": best["epoch"],
        "output": str(output),
    }
    atomic_write(output / "summary.json", json.dumps(summary, indent=2))
    print(f"done in {summary['seconds']:.0f}s: final val acc {summary['final_val_acc']:.1f}% at "
          f"{summary['final_val_bpp'] if summary['final_val_bpp'] is None else round(summary['final_val_bpp'], 4)} bpp, "
          f"best {summary['best_val_acc']:.1f}% (epoch {summary['best_epoch']}); outputs in {output}", flush=True)
    return summary
