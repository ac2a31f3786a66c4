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
principled form (docs/references.md, "Learned latents").

Before every validation the entropy coder tables are recomputed, validation accuracy is measured
on eval-mode latents and the validation bpp on real bitstreams (and as estimated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cdomain.latents.codecs import refresh_entropy_tables
from cdomain.latents.encode import compress, forward_latents, pad_images
from cdomain.latents.loader import CROP, RESIZE, random_params, transform_latents
from cdomain.train.engine import OptimConfig, Optimised, build_optimizer


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


class JointLearner(Optimised):
    """The encoder side of ``codec`` and ``classifier`` trained together (a learner of
    :func:`cdomain.train.engine.fit`).

    Training steps: the task optimiser (``optim``, with its schedule) on the classifier, Adam on
    the codec's main parameters, and Adam on the entropy bottleneck's quantiles with the
    auxiliary loss, as in CompressAI. Evaluation runs on eval-mode latents with fresh coder
    tables and measures the real bitstream bpp (``compress``) beside the estimate.
    """

    def __init__(self, codec: nn.Module, classifier: nn.Module, config: JointConfig, optim: OptimConfig, *,
                 steps_per_epoch: int, epochs: int, device: torch.device) -> None:
        self.codec, self.classifier, self.config, self.device = codec.to(device), classifier.to(device), config, device
        self.main, aux = encoder_parameters(codec)
        self.optimizer, self.scheduler = build_optimizer(classifier, optim, steps_per_epoch, epochs)
        self.codec_optimizer = torch.optim.Adam(self.main, lr=config.codec_lr)
        self.aux_optimizer = torch.optim.Adam(aux, lr=config.aux_lr)
        self.rng: np.random.Generator | None = None

    def begin_epoch(self, epoch: int, training: bool) -> None:
        self.codec.train(training)
        self.classifier.train(training)
        if training:
            self.rng = np.random.default_rng([self.config.seed, epoch])
        else:
            refresh_entropy_tables(self.codec)

    def train_batch(self, batch) -> dict[str, float]:
        images, labels = batch[0].to(self.device), batch[1].to(self.device)
        result = _step_loss(self.codec, self.classifier, images, labels, self.config, self.rng)
        if not torch.isfinite(result["loss"]):
            raise FloatingPointError(f"joint loss became {result['loss'].item()}; lower the learning rates")
        for optimizer in (self.optimizer, self.codec_optimizer, self.aux_optimizer):
            optimizer.zero_grad(set_to_none=True)
        result["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.main, 1.0)
        self.optimizer.step()
        self.codec_optimizer.step()
        self.scheduler.step()
        self.codec.aux_loss().backward()
        self.aux_optimizer.step()
        count = len(labels)
        sums = {key: float(result[key].detach()) * count for key in ("loss", "ce", "bpp")}
        sums.update(correct=float((result["logits"].argmax(1) == labels).sum()), count=float(count))
        return sums

    @torch.no_grad()
    def eval_batch(self, batch) -> dict[str, float]:
        images, labels = batch[0].to(self.device), batch[1].to(self.device)
        height, width = images.shape[-2:]
        padded, _ = pad_images(images)
        out = forward_latents(self.codec, padded, training=False)
        logits = self.classifier(*_task_inputs(out, self.config, None))
        sums = {"loss": float(nn.functional.cross_entropy(logits, labels, reduction="sum")),
                "correct": float((logits.argmax(1) == labels).sum()), "count": float(len(labels)),
                "estimate": float(out["bits"].sum()), "pixels": float(len(images) * height * width)}
        if self.config.bitstreams:
            sums["bits"] = float(compress(self.codec, images.cpu() if self.device.type != "cpu" else images).bits.sum())
        return sums

    def summarize(self, sums: dict[str, float], training: bool) -> dict[str, float]:
        count = max(1.0, sums["count"])
        metrics = {"loss": sums["loss"] / count, "acc": 100.0 * sums.get("correct", 0.0) / count,
                   "images": int(sums["count"])}
        if training:
            metrics.update(ce=sums.get("ce", 0.0) / count, bpp=sums.get("bpp", 0.0) / count)
        else:
            pixels = sums.get("pixels", 0.0)
            metrics["bpp"] = sums["bits"] / pixels if "bits" in sums and pixels else None
            metrics["likelihood_bpp"] = sums.get("estimate", 0.0) / max(1.0, pixels)
        return metrics

    def state_dict(self) -> dict:
        return {**super().state_dict(), "codec_optimizer": self.codec_optimizer.state_dict(),
                "aux_optimizer": self.aux_optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.codec_optimizer.load_state_dict(state["codec_optimizer"])
        self.aux_optimizer.load_state_dict(state["aux_optimizer"])
