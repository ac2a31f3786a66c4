"""TrainConfig: every training option, its type, its default and its one-line help, in one place.

``cdomain-train`` builds its flags from these fields, YAML files (``--config``) and a run's own
``config.yaml`` (``--resume``) are read into them with the same type checks, and the training
driver (:func:`cdomain.train.run`) takes nothing else. :meth:`TrainConfig.resolved` fills in the
task's defaults (data set, model, batch size, optimiser), so the ``config.yaml`` a run writes is
complete and reads back to an equal config.

Errors are :class:`~cdomain.errors.ConfigError`, which name the option.
"""

from __future__ import annotations

import math
import os
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from cdomain.errors import ConfigError

TASKS = ("classification", "counting", "segmentation")
INPUTS = ("dct", "rgb", "latent")
MODES = ("standard", "npt", "cpt", "jpeg-aug", "joint", "ac", "ttac")
OPTIMIZERS = ("sgd", "adamw")
REQUANT = ("pixel", "dct")
#: Crowd dataset layouts (cdomain.data.crowd_formats) and density-map kernels.
CROWD_FORMATS = ("shanghaitech", "qnrf", "jhu", "points")
DENSITY_METHODS = ("adaptive", "fixed")
#: The curriculum of the CPT study (crowd counting; docs/references.md, "Curriculum pre-training").
DEFAULT_CURRICULUM = (75, 60, 40, 30, 25, 20, 15, 10, 5, 1)
#: Task defaults used where an option is left unset (None).
TASK_DEFAULTS = {
    "classification": {"data": "textures", "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4,
                       "model": {"dct": "resnet_dct_small", "rgb": "resnet_rgb_small", "latent": "cresnet39"}},
    # measured on the embedded crowd set: lr 1e-2 gave the lowest MAE for both inputs
    "counting": {"data": "crowd", "batch_size": 16, "optimizer": "adamw", "lr": 1e-2, "weight_decay": 1e-4,
                 "model": {"dct": "csrnet_dct_small", "rgb": "csrnet_small"}},
    # per-pixel labels on the embedded mosaic set; AdamW 3e-3, not tuned (30 DCT epochs: val mIoU 35%)
    "segmentation": {"data": "mosaic", "batch_size": 16, "optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4,
                     "model": {"dct": "unet_dct_small", "rgb": "unet_small"}},
}
#: Optimiser defaults of artifact correction (--mode ac|ttac), where left unset.
CORRECTION_DEFAULTS = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.0}


def option(default: Any, help: str, *, choices: tuple | None = None, group: str = "run") -> Any:
    """A config field: its default, its one-line help (also the flag's), allowed values, flag group."""
    metadata = {"help": help, "choices": choices, "group": group}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class TrainConfig:
    """One training run's options. None means "the task's default" (see :data:`TASK_DEFAULTS`)."""

    # data
    task: str = option("classification", "what the network learns: class labels, crowd density maps, or per-pixel "
                                         "class maps", choices=TASKS, group="data")
    input: str = option("dct", "what the network reads: DCT coefficients, decoded pixels, or codec latents",
                        choices=INPUTS, group="data")
    data: str | None = option(None, "embedded dataset name (textures, textures-tiny, crowd, crowd-tiny, mosaic, "
                                    "mosaic-tiny) or a folder with train/ and val/ ImageFolder trees (counting: or a "
                                    "crowd dataset folder); default textures (counting: crowd, segmentation: mosaic)",
                              group="data")
    fbs: int = option(16, "frequency band selection: lowest zigzag frequencies kept per component (1..64)", group="data")
    crop: int | None = option(None, "square pixel crop, a multiple of 16; default whole image (embedded), 224 (folders)",
                              group="data")
    batch_size: int | None = option(None, "images per batch; default 64 (counting, segmentation 16)", group="data")
    workers: int = option(0, "data loading worker processes", group="data")
    skip_bad: bool = option(False, "skip unreadable image files and report how many", group="data")
    lenient: bool = option(False, "decode corrupt or truncated JPEG data as libjpeg does instead of refusing the file",
                           group="data")
    transcode: bool = option(False, "read CMYK/YCCK, RGB-coded, 12-bit and non-JPEG images through YCbCr JPEG copies "
                                    "cached in $CDOMAIN_DATA/transcoded", group="data")
    stats_images: int = option(512, "training images used for the input channel statistics", group="data")
    scale: tuple[int, ...] = option((1, 1), "training crops: LOW,HIGH range of DCT-domain downscale factors (1, 2, 4); "
                                            "each image draws one and its crop covers that many times --crop",
                                    group="data")
    label_map: str | None = option(None, "fine-to-coarse label map file (JSON, YAML or CSV fine,coarse): train and "
                                         "validate on the coarse classes", group="data")
    data_split: int | None = option(None, "MINC-2500-style data: which numbered label split (1..5); default 1",
                                    group="data")
    # quality and mode
    mode: str = option("standard", "standard, npt (fine-tune --init at --target-quality), cpt (curriculum), "
                                   "jpeg-aug (random quality per image), joint (codec + network, latent input), "
                                   "ac (artifact corrector, off-the-shelf) or ttac (task-targeted artifact corrector)",
                       choices=MODES, group="mode")
    quality: int | None = option(None, "re-encode train and val images at this IJG quality (jpeg-aug: val only)",
                                 group="mode")
    requant: str = option("pixel", "re-encode through pixels with libjpeg, or requantize the coefficients (faster)",
                          choices=REQUANT, group="mode")
    target_quality: int | None = option(None, "npt/cpt: the quality to end at", group="mode")
    curriculum: tuple[int, ...] = option(DEFAULT_CURRICULUM, "cpt: strictly decreasing qualities", group="mode")
    aug_quality: tuple[int, ...] = option((10, 90), "jpeg-aug: LOW,HIGH range of random qualities", group="mode")
    init: str | None = option(None, "initialise the network from this checkpoint (required by npt)", group="mode")
    # artifact correction (--mode ac|ttac, cdomain/train/correction.py)
    task_model: tuple[str, ...] = option((), "ac/ttac: frozen task network checkpoint(s), comma-separated; ttac sums "
                                             "their losses (multi-head), ac validates with the first", group="mode")
    ac_loss: str = option("l1", "ac: reconstruction loss on RGB pixels against the uncompressed image",
                          choices=("l1", "mse"), group="mode")
    ttac_loss: str = option("logits", "ttac: L1 between the task networks' logits, or their backbone features "
                                      "(dense tasks)", choices=("logits", "features"), group="mode")
    # learned latents
    codec: str | None = option(None, "latent input: codec checkpoint (cdomain-prepare codec) or CompressAI .pth.tar",
                               group="latent")
    cache: str | None = option(None, "latent input: latent cache folder (default OUTPUT/latents)", group="latent")
    latent_resize: int | None = option(32, "latent input: resize latents to this side before cropping", group="latent")
    latent_crop: int | None = option(28, "latent input: square latent crop (random in training)", group="latent")
    lambda_rate: float = option(0.01, "joint: weight of the bits per pixel beside the task loss", group="latent")
    lambda_dist: float = option(0.0, "joint: weight of 255^2 x the reconstruction MSE", group="latent")
    codec_lr: float = option(1e-4, "joint: learning rate of the codec's encoder side (Adam)", group="latent")
    # model and optimisation
    model: str | None = option(None, "registered model; default by task and input (see --list-models)", group="model")
    model_args: dict = option({}, "extra model registry arguments (YAML only), e.g. {drop_rate: 0.2}", group="model")
    epochs: int = option(20, "epochs (per phase in cpt)", group="model")
    optimizer: str | None = option(None, "sgd (Nesterov momentum 0.9) or adamw; default sgd (counting adamw)",
                                   choices=OPTIMIZERS, group="model")
    lr: float | None = option(None, "peak learning rate, cosine schedule; default 0.05 (counting 0.01)", group="model")
    weight_decay: float | None = option(None, "weight decay; default 5e-4 (counting 1e-4)", group="model")
    warmup_epochs: float = option(1.0, "linear learning-rate warm-up, in epochs", group="model")
    # real crowd datasets, schedules and backbone initialisation
    schedule: str = option("cosine", "after the warm-up: cosine, cosine:FLOOR, exp[:GAMMA] (per epoch, study: 0.99) "
                                     "or step[:EPOCHS[:GAMMA]]; restarts every cpt phase", group="model")
    init_backbone: str | None = option(None, "a local torchvision-format state-dict file for the model's backbone "
                                             "(.safetensors, or .pth/.pt read with weights_only)", group="model")
    format: str | None = option(None, "counting: layout of the --data folder; default detected",
                                choices=CROWD_FORMATS, group="data")
    val_fraction: float | None = option(None, "counting: share of train carved (seeded) into val where the dataset "
                                              "has no val split; default 0.2 (ShanghaiTech Part B and others 0.1)",
                                        group="data")
    density: str | None = option(None, "counting on a folder: adaptive (0.3 x mean distance to the 3 nearest heads) "
                                       "or fixed (--sigma) Gaussian kernels; default adaptive (Part B fixed)",
                                 choices=DENSITY_METHODS, group="data")
    sigma: float | None = option(None, "counting on a folder: fixed kernel width in pixels (also a lone head's); "
                                       "default 15", group="data")
    max_side: int | None = option(None, "counting on a folder: downscale images whose longer side exceeds this many "
                                        "pixels (points scaled too; cached copies), bounding memory", group="data")
    # run
    output: str | None = option(None, "output folder; default a new runs/<time>-<model>-<input>-<mode>-<n>")
    resume: bool = option(False, "continue the interrupted run in --output")
    overwrite: bool = option(False, "allow --output to be a non-empty folder of an earlier run, replacing it")
    seed: int = option(0, "seed of shuffling, augmentation and initialisation")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    threads: int = option(1, "PyTorch intra-op CPU threads; 0 keeps PyTorch's default (small networks run fastest on 1)")
    quiet: bool = option(False, "no progress bars")

    def __post_init__(self) -> None:
        for item in fields(self):
            object.__setattr__(self, item.name, _coerce(item, getattr(self, item.name)))
        _validate(self)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> "TrainConfig":
        """A config from a mapping of option names (``batch_size`` or ``batch-size``) to values."""
        if not isinstance(values, Mapping):
            raise ConfigError(source, f"expected a mapping of option names to values, got {type(values).__name__}")
        known = {item.name for item in fields(cls)}
        options = {str(key).replace("-", "_"): value for key, value in values.items()}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(source, f"unknown option(s) {', '.join(unknown)}")
        return cls(**options)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], **overrides: Any) -> "TrainConfig":
        """Read a YAML file of options (``yaml.safe_load``), then apply ``overrides``."""
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(str(path), f"cannot read config: {getattr(error, 'strerror', None) or error}") from None
        except yaml.YAMLError as error:
            raise ConfigError(str(path), f"not valid YAML ({str(error).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(str(path), "expected a mapping of option names to values")
        try:
            return cls.from_mapping({**loaded, **overrides}, source=str(path))
        except ConfigError as error:
            if error.option == str(path):
                raise
            raise ConfigError(f"{path}: {error.option}", error.message) from None

    def to_yaml(self) -> str:
        """YAML of every option; :meth:`from_yaml` reads it back to an equal config."""
        data = {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}
        return yaml.safe_dump(data, sort_keys=True)

    def replace(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)

    def resolved(self) -> "TrainConfig":
        """This config with the task's defaults filled in for every option left unset."""
        defaults = TASK_DEFAULTS[self.task]
        if self.mode in ("ac", "ttac"):  # the corrector's own optimiser, whatever the task
            defaults = {**defaults, **CORRECTION_DEFAULTS}
        changes = {key: defaults[key] for key in ("data", "batch_size", "optimizer", "lr", "weight_decay")
                   if getattr(self, key) is None}
        if self.model is None and self.mode in ("ac", "ttac"):
            changes["model"] = "artifact_corrector"
        elif self.model is None:
            if self.input not in defaults["model"]:
                raise ConfigError("input", f"{self.input} input has no {self.task} models")
            changes["model"] = defaults["model"][self.input]
        return replace(self, **changes) if changes else self


# ---------------------------------------------------------------------- type checks


def _coerce(item, value: Any) -> Any:
    """Check ``value`` against the field's annotation; accept the forms YAML and flags give."""
    name, annotation = item.name, item.type
    optional = "None" in annotation
    if value is None:
        if optional:
            return None
        raise ConfigError(name, "must be set (null is not allowed)")
    base = annotation.replace(" | None", "")
    if base == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(name, f"must be true or false, got {value!r}")
    if base == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(name, f"must be an integer, got {value!r}")
    if base == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise ConfigError(name, f"must be a number, got {value!r}") from None
        else:
            raise ConfigError(name, f"must be a number, got {value!r}")
        if not math.isfinite(number):
            raise ConfigError(name, f"must be a finite number, got {value!r}")
        return number
    if base == "str":
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if isinstance(value, str) and value:
            return value
        raise ConfigError(name, f"must be a non-empty string, got {value!r}")
    if base == "tuple[int, ...]":
        parts = value.split(",") if isinstance(value, str) else value
        if not isinstance(parts, (list, tuple)):
            raise ConfigError(name, f"must be a list of integers, got {value!r}")
        numbers = []
        for part in parts:
            if isinstance(part, str) and part.strip().lstrip("-").isdigit():
                part = int(part)
            if isinstance(part, bool) or not isinstance(part, int):
                raise ConfigError(name, f"must be a list of integers, got {value!r}")
            numbers.append(part)
        return tuple(numbers)
    if base == "tuple[str, ...]":
        parts = [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value
        if not isinstance(parts, (list, tuple)) or not all(isinstance(part, str) and part for part in parts):
            raise ConfigError(name, f"must be a list of file names, got {value!r}")
        return tuple(parts)
    if base == "dict":
        if isinstance(value, dict) and all(isinstance(key, str) for key in value):
            return dict(value)
        raise ConfigError(name, f"must be a mapping, got {value!r}")
    raise TypeError(f"unhandled option type {annotation} of {name}")  # a programming error


def _validate(config: TrainConfig) -> None:
    for item in fields(config):
        choices = item.metadata.get("choices")
        value = getattr(config, item.name)
        if choices and value is not None and value not in choices:
            raise ConfigError(item.name, f"must be one of {', '.join(choices)}, got {value!r}")

    def at_least(name: str, low: float, inclusive: bool = True) -> None:
        value = getattr(config, name)
        if value is not None and (value < low if inclusive else value <= low):
            raise ConfigError(name, f"must be {'>=' if inclusive else '>'} {low}, got {value}")

    for name in ("epochs", "batch_size", "stats_images", "latent_resize", "latent_crop", "max_side"):
        at_least(name, 1)
    for name in ("workers", "threads", "seed", "warmup_epochs", "weight_decay", "lambda_rate", "lambda_dist"):
        at_least(name, 0)
    for name in ("lr", "codec_lr"):
        at_least(name, 0, inclusive=False)
    if config.val_fraction is not None and not 0 < config.val_fraction < 1:
        raise ConfigError("val_fraction", f"must be in (0, 1), got {config.val_fraction}")
    at_least("sigma", 0, inclusive=False)
    from cdomain.train.schedules import parse_schedule

    try:
        parse_schedule(config.schedule)
    except ValueError as error:
        raise ConfigError("schedule", str(error)) from None
    if config.init_backbone is not None and config.init is not None:
        raise ConfigError("init_backbone", "cannot be combined with --init (a whole checkpoint)")
    if not 1 <= config.fbs <= 64:
        raise ConfigError("fbs", f"must be in 1..64, got {config.fbs}")
    if config.crop is not None and (config.crop < 16 or config.crop % 16):
        raise ConfigError("crop", f"must be a positive multiple of 16 pixels, got {config.crop}")
    if len(config.scale) != 2 or not 1 <= config.scale[0] <= config.scale[1] or not any(
            config.scale[0] <= f <= config.scale[1] for f in (1, 2, 4)):
        raise ConfigError("scale", f"must be LOW,HIGH with 1 <= LOW <= HIGH holding a factor 1, 2 or 4, "
                                   f"got {list(config.scale)}")
    if config.scale != (1, 1) and (config.crop is None or config.task != "classification" or config.input == "latent"):
        raise ConfigError("scale", "needs --crop and classification on dct or rgb input")
    for name in ("quality", "target_quality"):
        value = getattr(config, name)
        if value is not None and not 1 <= value <= 100:
            raise ConfigError(name, f"must be in 1..100, got {value}")
    curriculum = config.curriculum
    if not curriculum or any(not 1 <= q <= 100 for q in curriculum):
        raise ConfigError("curriculum", f"qualities must be in 1..100, got {list(curriculum)}")
    if any(a <= b for a, b in zip(curriculum, curriculum[1:])):
        raise ConfigError("curriculum", f"must be strictly decreasing, got {list(curriculum)}")
    low_high = config.aug_quality
    if len(low_high) != 2 or not 1 <= low_high[0] <= low_high[1] <= 100:
        raise ConfigError("aug_quality", f"must be LOW,HIGH with 1 <= LOW <= HIGH <= 100, got {list(low_high)}")
    if config.latent_crop is not None and config.latent_resize is not None and config.latent_crop > config.latent_resize:
        raise ConfigError("latent_crop", f"({config.latent_crop}) must not exceed --latent-resize ({config.latent_resize})")
    if config.device != "auto" and not _valid_device(config.device):
        raise ConfigError("device", f"must be auto, cpu, cuda or cuda:N, got {config.device!r}")
    if config.resume and config.output is None:
        raise ConfigError("resume", "needs --output, the folder of the run to continue")
    if config.resume and config.overwrite:
        raise ConfigError("overwrite", "cannot be combined with --resume")
    # combinations of input, task and mode
    if config.input == "latent":
        if config.task != "classification":
            raise ConfigError("input", "latent input trains classifiers only (--task classification)")
        if config.mode not in ("standard", "joint"):
            raise ConfigError("mode", f"latent input takes standard or joint, not {config.mode}")
        if config.crop is not None and config.mode == "standard":
            raise ConfigError("crop", "latent input encodes whole images; crop the latents with --latent-crop")
    elif config.mode == "joint":
        raise ConfigError("mode", "joint fine-tunes a codec: it needs --input latent")
    if config.mode == "npt" and config.init is None and not config.resume:
        raise ConfigError("init", "--mode npt fine-tunes a checkpoint trained at the starting quality: pass --init")
    if config.mode in ("npt", "cpt") and config.target_quality is None and config.quality is None:
        raise ConfigError("target_quality", f"--mode {config.mode} needs the quality to end at")
    if config.mode == "ttac" and not config.task_model and not config.resume:
        raise ConfigError("task_model", "--mode ttac needs the frozen task network(s) to target: --task-model CKPT")
    if config.mode in ("ac", "ttac") and config.input != "dct":
        raise ConfigError("input", f"--mode {config.mode} reads coefficients: use --input dct (the task networks "
                                   "behind the corrector may read dct or rgb)")
    if config.mode == "cpt":
        target = config.target_quality if config.target_quality is not None else config.quality
        if target not in curriculum:
            raise ConfigError("target_quality", f"{target} is not in the curriculum {list(curriculum)}")


def _valid_device(name: str) -> bool:
    if name == "cpu" or name == "cuda":
        return True
    return name.startswith("cuda:") and name[5:].isdigit()


def field_type(item) -> str:
    """The field's base type name (``int``, ``float``, ``str``, ``bool``, ``tuple[int, ...]``, ``dict``)."""
    return item.type.replace(" | None", "")


def field_default(item) -> Any:
    return item.default if item.default is not MISSING else item.default_factory()


__all__ = ["TrainConfig", "TASKS", "INPUTS", "MODES", "OPTIMIZERS", "REQUANT", "DEFAULT_CURRICULUM",
           "TASK_DEFAULTS", "field_type", "field_default"]
