"""Train a hyperprior codec with CompressAI's rate-distortion objective, without any download.

Loss = lambda * 255^2 * MSE(x_hat, x) + bpp, with bpp estimated from the likelihoods of the
noise-perturbed latents (CompressAI's ``RateDistortionLoss``; its lambdas per quality are
:data:`cdomain.latents.codecs.MSE_LAMBDAS`). As in CompressAI's example training script, the
entropy bottleneck's quantiles have their own optimiser minimising the auxiliary loss, gradients
are clipped to norm 1, and main and auxiliary learning rates default to 1e-4 and 1e-3.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from cdomain.data.folder import DataSource, resolve_source
from cdomain.latents.codecs import MSE_LAMBDAS, codec_config, refresh_entropy_tables, save_codec
from cdomain.latents.images import RandomCrops
from cdomain.train.state import load_training_state, save_training_state


@dataclass
class CodecTrainConfig:
    """How to train a codec; defaults follow CompressAI's example script where it has one."""

    steps: int = 2000  # optimisation steps (CompressAI trains for millions on Vimeo-90k)
    batch_size: int = 16  # CompressAI example: 16
    crop: int = 64  # square training crops in pixels; CompressAI example: 256
    lr: float = 1e-4  # main optimiser (Adam)
    aux_lr: float = 1e-3  # auxiliary optimiser (Adam) for the entropy bottleneck quantiles
    lmbda: float | None = None  # None: CompressAI's MSE lambda for the codec's quality
    clip_max_norm: float = 1.0
    seed: int = 0
    workers: int = 0
    checkpoint_every: int = 500  # steps between checkpoints (and one at the end)


def rate_distortion(output: dict, images: torch.Tensor, lmbda: float) -> dict[str, torch.Tensor]:
    """CompressAI's ``RateDistortionLoss`` (MSE): ``lambda * 255^2 * mse + bpp``."""
    batch, _, height, width = images.shape
    pixels = batch * height * width
    bpp = sum(torch.log(lik).sum() for lik in output["likelihoods"].values()) / (-math.log(2) * pixels)
    mse = torch.nn.functional.mse_loss(output["x_hat"], images)
    return {"loss": lmbda * 255**2 * mse + bpp, "mse": mse, "bpp": bpp}


def split_parameters(model: torch.nn.Module) -> tuple[list, list]:
    """(main, auxiliary) parameters: the auxiliary ones are the entropy bottleneck quantiles."""
    main, aux = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (aux if name.endswith(".quantiles") else main).append(parameter)
    return main, aux


def state_path(checkpoint: str | os.PathLike[str]) -> Path:
    """Where the training state of codec file ``checkpoint`` is kept (``<name>.state.safetensors``)."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + ".state.safetensors")


def saved_step(checkpoint: str | os.PathLike[str]) -> int | None:
    """The step the training state beside ``checkpoint`` was saved at, or None if there is none."""
    path = state_path(checkpoint)
    return int(load_training_state(path)["step"]) if path.is_file() else None


def psnr(mse: float) -> float:
    return float("inf") if mse <= 0 else 10 * math.log10(1.0 / mse)


def train_codec(
    model: torch.nn.Module,
    source: DataSource,
    config: CodecTrainConfig = CodecTrainConfig(),
    *,
    split: str | None = "train",
    checkpoint: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    on_checkpoint: Callable[[int, dict], None] | None = None,
    resume: bool = False,
) -> dict:
    """Train ``model`` (from :func:`~cdomain.latents.codecs.build_codec`) on random crops.

    Writes ``checkpoint`` (a cdomain codec file, atomically) every ``checkpoint_every`` steps
    and at the end, each time with its training state beside it (:func:`state_path`: step and
    optimiser states, safetensors). ``resume`` continues from that state: pass the codec loaded
    from ``checkpoint`` as ``model``; training goes on from the saved step with the saved
    optimiser states (the crops of the resumed epochs are drawn afresh). Returns a summary:
    steps, seconds, lambda and the mean loss, bpp, MSE and PSNR over the last 10% of steps.
    """
    lmbda = config.lmbda if config.lmbda is not None else MSE_LAMBDAS[codec_config(model)["quality"]]
    samples = resolve_source(source, split)
    dataset = RandomCrops(samples, config.crop, config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=len(dataset) >= config.batch_size,
                        num_workers=config.workers, generator=generator)
    model.to(device).train()
    main, aux = split_parameters(model)
    optimizer = torch.optim.Adam(main, lr=config.lr)
    aux_optimizer = torch.optim.Adam(aux, lr=config.aux_lr)
    tail = max(1, config.steps // 10)
    recent: list[tuple[float, float, float]] = []
    start = time.perf_counter()
    step = 0
    if resume:
        saved = load_training_state(state_path(checkpoint))
        optimizer.load_state_dict(saved["optimizer"])
        aux_optimizer.load_state_dict(saved["aux_optimizer"])
        step, dataset.epoch = int(saved["step"]), int(saved["epoch"]) + 1
        generator.manual_seed(config.seed + 1_000_003 * dataset.epoch)
        recent = [tuple(item) for item in saved["recent"]]
    bar = tqdm(total=config.steps, initial=step, desc=f"codec lambda={lmbda:g}", unit="step", disable=not progress, leave=False)
    info = {"lambda": lmbda, "crop": config.crop, "batch_size": config.batch_size, "data": str(source)}
    while step < config.steps:
        for images in loader:
            images = images.to(device)
            output = model(images)
            losses = rate_distortion(output, images, lmbda)
            if not torch.isfinite(losses["loss"]):
                raise FloatingPointError(f"codec training loss became {losses['loss'].item()} at step {step}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            aux_optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            if config.clip_max_norm > 0:
                torch.nn.utils.clip_grad_norm_(main, config.clip_max_norm)
            optimizer.step()
            aux_loss = model.aux_loss()
            aux_loss.backward()
            aux_optimizer.step()
            step += 1
            recent = (recent + [(losses["loss"].item(), losses["bpp"].item(), losses["mse"].item())])[-tail:]
            bar.update(1)
            bar.set_postfix(loss=f"{recent[-1][0]:.3f}", bpp=f"{recent[-1][1]:.3f}", psnr=f"{psnr(recent[-1][2]):.1f}")
            if checkpoint is not None and (step % config.checkpoint_every == 0 or step == config.steps):
                model.eval()
                save_codec(checkpoint, model, info={**info, "step": step})
                save_training_state(state_path(checkpoint), {
                    "step": step, "epoch": dataset.epoch, "steps": config.steps, "recent": [list(r) for r in recent],
                    "optimizer": optimizer.state_dict(), "aux_optimizer": aux_optimizer.state_dict()})
                model.train()
                if on_checkpoint is not None:
                    on_checkpoint(step, {"loss": recent[-1][0]})
            if step >= config.steps:
                break
        dataset.epoch += 1
    bar.close()
    model.eval()
    if checkpoint is None:
        refresh_entropy_tables(model)
    loss, bpp, mse = (sum(values) / len(recent) for values in zip(*recent))
    return {
        "steps": step,
        "seconds": round(time.perf_counter() - start, 1),
        "lambda": lmbda,
        "loss": loss,
        "bpp": bpp,
        "mse": mse,
        "psnr": psnr(mse),
        "checkpoint": str(Path(checkpoint)) if checkpoint is not None else None,
    }
