"""Joint fine-tuning of a codec's encoder side and a task network on its latents.

Loss = cross-entropy + ``lambda_rate`` * bpp (+ ``lambda_dist`` * 255^2 * MSE of the
reconstruction). The rate is the likelihood estimate of the noise-perturbed latents, as in
CompressAI's training; the task network sees the rounded latents with a straight-through
gradient (:func:`cdomain.latents.encode.forward_latents`), i.e. what it gets at inference.

Trained: the analysis transform ``g_a``, the hyper-analysis ``h_a``, the hyper-synthesis
``h_s`` and the entropy bottleneck's density (its quantiles by the auxiliary loss with their
own optimiser, as in CompressAI). The synthesis ``g_s`` stays fixed: the bitstreams remain
CompressAI bitstreams of the same codec, and the optional distortion term keeps the tuned
encoder compatible with the existing decoder. Combining the task loss with the codec's full
rate-distortion loss diverged in the published experiments; a weighted rate term is the
principled form (REFERENCES.md, "Learned latents").

After every epoch the entropy coder tables are recomputed, validation accuracy is measured on
eval-mode latents and the validation bpp on real bitstreams (and as estimated).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from cdomain.latents.codecs import refresh_entropy_tables
from cdomain.latents.encode import compress, forward_latents, pad_images
from cdomain.latents.loader import CROP, RESIZE, random_params, transform_latents
from cdomain.train.engine import OptimConfig, build_optimizer


@dataclass
class JointConfig:
    """Joint fine-tuning settings (the task optimiser is :class:`~cdomain.train.engine.OptimConfig`)."""

    lambda_rate: float = 0.01  # weight of bpp beside the cross-entropy
    lambda_dist: float = 0.0  # weight of 255^2 * MSE through the fixed g_s (0: no decoding)
    codec_lr: float = 1e-4  # Adam, encoder side
    aux_lr: float = 1e-3  # Adam, entropy bottleneck quantiles
    resize: int | None = RESIZE  # latent augmentation, as LatentLoader's
    crop: int | None = CROP
    flip: bool = True
    seed: int = 0
    bitstreams: bool = True  # measure validation bpp on real bitstreams each epoch


def encoder_parameters(codec: nn.Module) -> tuple[list, list]:
    """(main, auxiliary) trainable codec parameters: everything but g_s; quantiles apart."""
    main, aux = [], []
    for name, parameter in codec.named_parameters():
        if name.startswith("g_s."):
            parameter.requires_grad_(False)
            continue
        parameter.requires_grad_(True)
        (aux if name.endswith(".quantiles") else main).append(parameter)
    return main, aux


def _task_inputs(out: dict, config: JointConfig, rng: np.random.Generator | None):
    y_hat, sigma_hat = out["y_hat"], out["sigma_hat"]
    offsets = flips = None
    if rng is not None:
        offsets, flips = random_params(rng, tuple(y_hat.shape[-2:]), config.resize, config.crop, config.flip, len(y_hat))
    return transform_latents(y_hat, sigma_hat, resize=config.resize, crop=config.crop, offsets=offsets, flips=flips)


def _step_loss(codec, classifier, images, labels, config: JointConfig, rng) -> dict:
    height, width = images.shape[-2:]
    padded, padding = pad_images(images)
    out = forward_latents(codec, padded, training=True)
    logits = classifier(*_task_inputs(out, config, rng))
    ce = nn.functional.cross_entropy(logits, labels)
    bpp = out["bits"].sum() / (len(images) * height * width)
    loss = ce + config.lambda_rate * bpp
    mse = torch.zeros(())
    if config.lambda_dist > 0:
        left, right, top, bottom = padding
        x_hat = codec.g_s(out["y_hat"])[..., top : top + height, left : left + width]
        mse = nn.functional.mse_loss(x_hat, images)
        loss = loss + config.lambda_dist * 255**2 * mse
    return {"loss": loss, "ce": ce, "bpp": bpp, "mse": mse, "logits": logits}


@torch.no_grad()
def evaluate_joint(codec, classifier, batches, device, config: JointConfig, *, progress: bool = False) -> dict:
    """Accuracy on eval-mode latents, loss, estimated bpp and (optionally) real bitstream bpp."""
    codec.eval()
    classifier.eval()
    refresh_entropy_tables(codec)
    loss_sum = correct = seen = 0
    bits = estimate = pixels = 0.0
    for images, labels in tqdm(batches, desc="validate", leave=False, disable=not progress, unit="batch"):
        images, labels = images.to(device), labels.to(device)
        height, width = images.shape[-2:]
        padded, _ = pad_images(images)
        out = forward_latents(codec, padded, training=False)
        logits = classifier(*_task_inputs(out, config, None))
        loss_sum += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        estimate += float(out["bits"].sum())
        pixels += len(images) * height * width
        if config.bitstreams:
            bits += float(compress(codec, images.cpu() if device.type != "cpu" else images).bits.sum())
    return {
        "loss": loss_sum / max(1, seen),
        "acc": 100.0 * correct / max(1, seen),
        "bpp": bits / pixels if config.bitstreams and pixels else None,
        "likelihood_bpp": estimate / max(1.0, pixels),
        "images": seen,
    }


def fit_joint(
    codec: nn.Module,
    classifier: nn.Module,
    train_batches,
    val_batches,
    *,
    epochs: int,
    optim: OptimConfig = OptimConfig(),
    config: JointConfig = JointConfig(),
    device: torch.device | str = "cpu",
    progress: bool = True,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> list[dict]:
    """Fine-tune ``codec`` (encoder side) and ``classifier`` together on image batches.

    ``train_batches``/``val_batches`` yield ``(images [B, 3, H, W] in [0, 1], labels)``
    (:class:`cdomain.latents.images.ImageLoader`). Returns one record per epoch with training
    loss, cross-entropy, estimated bpp and accuracy, and validation loss, accuracy, real and
    estimated bpp. The codec's entropy tables are current after every epoch, so
    ``on_epoch_end`` can save it with :func:`cdomain.latents.codecs.save_codec`.
    """
    device = torch.device(device)
    codec.to(device)
    classifier.to(device)
    frozen_decoder = {name: p.requires_grad for name, p in codec.named_parameters() if name.startswith("g_s.")}
    main, aux = encoder_parameters(codec)
    optimizer, scheduler = build_optimizer(classifier, optim, len(train_batches), epochs)
    codec_optimizer = torch.optim.Adam(main, lr=config.codec_lr)
    aux_optimizer = torch.optim.Adam(aux, lr=config.aux_lr)
    try:
        return _fit_joint(codec, classifier, train_batches, val_batches, epochs, optimizer, scheduler, codec_optimizer,
                          aux_optimizer, main, config, device, progress, on_epoch_end)
    finally:
        for name, parameter in codec.named_parameters():
            if name in frozen_decoder:
                parameter.requires_grad_(frozen_decoder[name])


def _fit_joint(codec, classifier, train_batches, val_batches, epochs, optimizer, scheduler, codec_optimizer,
               aux_optimizer, main, config, device, progress, on_epoch_end) -> list[dict]:
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        codec.train()
        classifier.train()
        rng = np.random.default_rng([config.seed, epoch])
        sums = {"loss": 0.0, "ce": 0.0, "bpp": 0.0}
        correct = seen = 0
        bar = tqdm(train_batches, desc=f"joint epoch {epoch}/{epochs}", total=len(train_batches), leave=False,
                   disable=not progress, unit="batch")
        for images, labels in bar:
            images, labels = images.to(device), labels.to(device)
            result = _step_loss(codec, classifier, images, labels, config, rng)
            if not torch.isfinite(result["loss"]):
                raise FloatingPointError(f"joint loss became {result['loss'].item()}; lower the learning rates")
            optimizer.zero_grad(set_to_none=True)
            codec_optimizer.zero_grad(set_to_none=True)
            aux_optimizer.zero_grad(set_to_none=True)
            result["loss"].backward()
            torch.nn.utils.clip_grad_norm_(main, 1.0)
            optimizer.step()
            codec_optimizer.step()
            scheduler.step()
            codec.aux_loss().backward()
            aux_optimizer.step()
            count = len(labels)
            for key in sums:
                sums[key] += float(result[key].detach()) * count
            correct += int((result["logits"].argmax(1) == labels).sum())
            seen += count
            bar.set_postfix(ce=f"{sums['ce'] / seen:.3f}", bpp=f"{sums['bpp'] / seen:.3f}",
                            acc=f"{100 * correct / seen:.1f}%")
        train_seconds = time.perf_counter() - start
        val = evaluate_joint(codec, classifier, val_batches, device, config, progress=progress)
        record = {
            "epoch": epoch,
            "train_loss": sums["loss"] / max(1, seen),
            "train_ce": sums["ce"] / max(1, seen),
            "train_bpp": sums["bpp"] / max(1, seen),
            "train_acc": 100.0 * correct / max(1, seen),
            "val_loss": val["loss"],
            "val_acc": val["acc"],
            "val_bpp": val["bpp"],
            "val_likelihood_bpp": val["likelihood_bpp"],
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - start,
            "train_images_per_second": seen / max(train_seconds, 1e-9),
        }
        history.append(record)
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
    return history
