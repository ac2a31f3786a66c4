"""Input kinds as small strategies: what a network reads, how its loaders and learner are built.

- ``dct`` / ``rgb``: JPEG files, re-encoded per phase quality when asked (cached on disk),
  read as coefficients or decoded pixels of the same crops; channel statistics from the
  training data.
- ``latent`` (frozen codec): the images of each split (at the phase quality) are encoded once
  into a latent cache, then read as ``(y_hat, sigma_hat)``; validation bpp from real bitstreams.
- ``joint``: latent input whose codec encoder trains with the network on image batches
  (:class:`cdomain.latents.joint.JointLearner`); the codec is part of the committed state.

The driver (:mod:`cdomain.train.driver`) calls the same methods whatever the kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cdomain.data.inputs import make_loader
from cdomain.data.folder import SampleList
from cdomain.errors import ConfigError
from cdomain.models.spec import InputSpec
from cdomain.train import distributed
from cdomain.train.engine import Learner, OptimConfig

if TYPE_CHECKING:
    from cdomain.train.driver import TrainingRun


def optim_config(config) -> OptimConfig:
    return OptimConfig(config.optimizer, config.lr, config.weight_decay, warmup_epochs=config.warmup_epochs)


class JPEGInput:
    """DCT coefficients or decoded pixels of JPEG files."""

    codec = None

    def setup(self, run: "TrainingRun") -> None:
        self.crop = run.config.crop if run.config.crop is not None else (None if run.dataset.embedded else 224)

    def model_kwargs(self, run: "TrainingRun") -> dict:
        return {"fbs": run.config.fbs} if run.config.input == "dct" else {}

    def samples(self, run: "TrainingRun", split: str, quality: int | None) -> SampleList:
        from cdomain.data.quality import reencoded_samples

        base = run.dataset.split(split)
        if quality is None:
            return base
        if run.dist.is_main:
            samples = reencoded_samples(base, quality, run.config.requant, progress=run.progress)
        distributed.barrier()  # the other ranks reuse rank 0's cache
        if not run.dist.is_main:
            samples = reencoded_samples(base, quality, run.config.requant)
        return samples

    def loader(self, run: "TrainingRun", spec: InputSpec, split: str, quality: int | None, train: bool, stats: Any):
        config = run.config
        transform = None
        if train and config.mode == "jpeg-aug":
            from cdomain.data.quality import RandomQuality

            transform = RandomQuality(config.aug_quality[0], config.aug_quality[1], config.requant)
        loader = make_loader(spec, self.samples(run, split, quality), train=train, batch_size=config.batch_size,
                             crop=self.crop, seed=config.seed, workers=config.workers, skip_bad=config.skip_bad,
                             stats=stats, transform=transform, target=run.dataset.target(split))
        if run.dist.enabled:
            loader.shard(run.dist.rank, run.dist.world_size)
        return loader

    def compute_stats(self, run: "TrainingRun", spec: InputSpec, quality: int | None) -> Any:
        loader = self.loader(run, spec, "train", quality, False, None)
        return loader.compute_stats(run.config.stats_images)

    def learner(self, run: "TrainingRun", model, trained, steps_per_epoch: int, epochs: int):
        return Learner(trained, run.task, optim_config(run.config), steps_per_epoch=steps_per_epoch, epochs=epochs,
                       device=run.device, module=model)

    def epoch_extras(self, run: "TrainingRun", val) -> dict:
        return {}


class LatentInput(JPEGInput):
    """Cached ``(y_hat, sigma_hat)`` of a frozen codec."""

    def setup(self, run: "TrainingRun") -> None:
        from cdomain.latents.codecs import load_codec

        config = run.config
        if config.codec is None:
            raise ConfigError("codec", "latent input needs a codec file: train one with 'cdomain-prepare codec' "
                                       "or pass a local CompressAI .pth.tar")
        self.codec = load_codec(config.codec)
        self.crop = config.crop
        self.cache = Path(config.cache) if config.cache else run.output / "latents"

    def model_kwargs(self, run: "TrainingRun") -> dict:
        return {"latent_channels": int(self.codec.M)}

    def loader(self, run: "TrainingRun", spec: InputSpec, split: str, quality: int | None, train: bool, stats: Any):
        from cdomain.latents.cache import write_latents

        config = run.config
        samples = self.samples(run, split, quality)
        if config.skip_bad:
            samples = run.readable(samples)
        directory = self.cache / (split if quality is None else f"{split}-q{quality}")
        if run.dist.is_main:
            write_latents(self.codec, samples, directory, bitstreams=split == "val", codec_path=str(config.codec),
                          progress=run.progress)
        distributed.barrier()
        loader = make_loader(spec, directory, train=train, batch_size=config.batch_size, seed=config.seed,
                             workers=config.workers, latent_resize=config.latent_resize, latent_crop=config.latent_crop)
        if run.dist.enabled:
            loader.shard(run.dist.rank, run.dist.world_size)
        return loader

    def compute_stats(self, run, spec, quality):
        return None

    def epoch_extras(self, run: "TrainingRun", val) -> dict:
        return {"val_bpp": val.bpp.get("bpp"), "val_likelihood_bpp": val.bpp.get("likelihood_bpp")}


class JointInput(LatentInput):
    """Image batches through a codec whose encoder side trains with the network."""

    def setup(self, run: "TrainingRun") -> None:
        super().setup(run)
        if run.dist.enabled:
            raise ConfigError("mode", "joint fine-tuning runs in one process; launch it without torchrun")

    def loader(self, run: "TrainingRun", spec: InputSpec, split: str, quality: int | None, train: bool, stats: Any):
        from cdomain.latents.images import ImageLoader

        config = run.config
        loader = ImageLoader(self.samples(run, split, quality), batch_size=config.batch_size, crop=config.crop,
                             augment=train, seed=config.seed, workers=config.workers, skip_bad=config.skip_bad)
        loader.drop_last = train and len(loader.samples) >= config.batch_size
        return loader

    def learner(self, run: "TrainingRun", model, trained, steps_per_epoch: int, epochs: int):
        from cdomain.latents.joint import JointConfig, JointLearner

        config = run.config
        joint = JointConfig(lambda_rate=config.lambda_rate, lambda_dist=config.lambda_dist, codec_lr=config.codec_lr,
                            resize=config.latent_resize, crop=config.latent_crop, seed=config.seed)
        return JointLearner(self.codec, model, joint, optim_config(config), steps_per_epoch=steps_per_epoch,
                            epochs=epochs, device=run.device)

    def epoch_extras(self, run, val) -> dict:
        return {}


def input_kind(config) -> JPEGInput:
    """The strategy for ``config.input`` (and joint mode)."""
    if config.mode in ("ac", "ttac"):
        from cdomain.train.correction import CorrectionInput

        return CorrectionInput()
    if config.input == "latent":
        return JointInput() if config.mode == "joint" else LatentInput()
    return JPEGInput()


def move(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    return model.to(device)
