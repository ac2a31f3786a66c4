"""Input kinds as small strategies: what a network reads, how its loaders and learner are built.

- ``dct`` / ``rgb``: JPEG files, re-encoded per phase quality when asked (cached on disk, each
  rank and data worker writing its own share), read as coefficients or decoded pixels of the
  same crops; channel statistics from the training data. DCT batches take the batch path
  (workers pack int16 coefficients, one kernel call on the model's device makes the inputs).
- ``latent`` (frozen codec): the images of each split (at the phase quality) are encoded once
  into a latent cache, then read as ``(y_hat, sigma_hat)``; validation bpp from real bitstreams.
  A dataset of learned-codec bitstream files (``cdomain-prepare compress``) is read straight
  from its files instead (entropy decoding in the loader's workers, no cache, no pixels).
- ``joint``: latent input whose codec encoder trains with the network on image batches
  (:class:`cdomain.latents.joint.JointLearner`); the codec is part of the committed state.

The driver (:mod:`cdomain.train.driver`) calls the same methods whatever the kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdomain.data.inputs import make_loader
from cdomain.data.folder import SampleList
from cdomain.jpeg.transcode import default_cache_dir as transcode_dir
from cdomain.errors import ConfigError
from cdomain.models.spec import InputSpec
from cdomain.train import distributed
from cdomain.train.engine import Learner, OptimConfig

if TYPE_CHECKING:
    from cdomain.train.driver import TrainingRun


def optim_config(config) -> OptimConfig:
    return OptimConfig(config.optimizer, config.lr, config.weight_decay, warmup_epochs=config.warmup_epochs,
                       schedule=config.schedule)


class JPEGInput:
    """DCT coefficients or decoded pixels of JPEG files."""

    codec = None

    def setup(self, run: "TrainingRun") -> None:
        if run.dataset.format == "bitstream":
            raise ConfigError("input", f"{run.config.data} holds learned-codec bitstreams; read them with "
                                       "--input latent --codec <the codec that wrote them>")
        self.crop = run.config.crop if run.config.crop is not None else (None if run.dataset.embedded else 224)
        if run.dataset.eval_whole and run.config.crop is None:
            # real crowd images differ in size: whole images one at a time, or fixed random patches
            self.crop = None if run.config.batch_size == 1 else 256

    def model_kwargs(self, run: "TrainingRun") -> dict:
        return {"fbs": run.config.fbs} if run.config.input == "dct" else {}

    def samples(self, run: "TrainingRun", split: str, quality: int | None) -> SampleList:
        from cdomain.data.quality import reencoded_samples

        base = run.dataset.split(split)
        if quality is None:
            return base
        # every rank writes its own share of the cache with its data workers, then the shares are joined
        return reencoded_samples(base, quality, run.config.requant, progress=run.progress,
                                 share=(run.dist.rank, run.dist.world_size), workers=run.config.workers,
                                 wait=distributed.barrier, strict=not run.config.lenient,
                                 transcode=transcode_dir() if run.config.transcode else None)

    def loader(self, run: "TrainingRun", spec: InputSpec, split: str, quality: int | None, train: bool, stats: Any):
        config = run.config
        transform = None
        if train and config.mode == "jpeg-aug":
            from cdomain.data.quality import RandomQuality

            transform = RandomQuality(config.aug_quality[0], config.aug_quality[1], config.requant)
        crop, batch_size = self.crop, config.batch_size
        if run.dataset.eval_whole and not train:  # whole images of varied size, as the papers evaluate
            crop, batch_size = None, 1
        loader = make_loader(spec, self.samples(run, split, quality), train=train, batch_size=batch_size,
                             crop=crop, seed=config.seed, workers=config.workers, skip_bad=config.skip_bad,
                             stats=stats, transform=transform, target=run.dataset.target(split),
                             scale=config.scale if train else None,
                             device=run.device,  # DCT inputs: the batch path, made on the model's device
                             strict=not config.lenient, transcode=transcode_dir() if config.transcode else None)
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
        self.bitstreams = run.dataset.format == "bitstream"
        if config.codec is None:
            if self.bitstreams:
                from cdomain.latents.bitstream import read_header

                header = read_header(run.dataset.split("train").paths[0])
                raise ConfigError("codec", f"{config.data} holds bitstreams of {header.codec_description()}; "
                                           "pass that codec's file")
            raise ConfigError("codec", "latent input needs a codec file: train one with 'cdomain-prepare codec' "
                                       "or pass a local CompressAI .pth.tar")
        if self.bitstreams and any(phase.train_quality is not None or phase.val_quality is not None
                                   for phase in run.phases):
            raise ConfigError("quality", f"{config.data} holds learned-codec bitstreams, which are not re-encoded "
                                         "at JPEG qualities; train them with --mode standard and no --quality")
        if self.bitstreams and config.cache:
            raise ConfigError("cache", f"{config.data} holds bitstreams, read without a latent cache; drop --cache")
        self.codec = load_codec(config.codec)
        self.crop = config.crop
        self.cache = Path(config.cache) if config.cache else run.output / "latents"

    def model_kwargs(self, run: "TrainingRun") -> dict:
        return {"latent_channels": int(self.codec.M)}

    def loader(self, run: "TrainingRun", spec: InputSpec, split: str, quality: int | None, train: bool, stats: Any):
        from cdomain.latents.cache import write_latents

        config = run.config
        if self.bitstreams:  # the files themselves, decoded in the workers; the codec must match them
            loader = make_loader(spec, run.dataset.split(split), train=train, batch_size=config.batch_size,
                                 seed=config.seed, workers=config.workers, latent_resize=config.latent_resize,
                                 latent_crop=config.latent_crop, codec=self.codec, skip_bad=config.skip_bad)
            if run.dist.enabled:
                loader.shard(run.dist.rank, run.dist.world_size)
            return loader
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
        if self.bitstreams:
            raise ConfigError("mode", f"{run.config.data} holds bitstreams; joint fine-tuning needs the images")
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
