"""cdomain-train: train a network on JPEG DCT coefficients, decoded pixels or codec latents.

With no flags it trains ``resnet_dct_small`` with FBS n=16 on the embedded ``textures`` dataset
(generated on first use). Every flag is a field of :class:`cdomain.train.TrainConfig` (its help
text is the field's); this module only parses flags and YAML into the config and hands it to
:func:`cdomain.train.run`. Flags override ``--config`` YAML; ``--resume --output DIR`` reads the
run's own ``config.yaml``.

Multi-process: ``torchrun --nproc_per_node=N -m cdomain.cli.train ...``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Sequence

from cdomain.cli.errors import run_command
from cdomain.errors import ConfigError
from cdomain.train.config import TrainConfig, field_type

GROUPS = {"data": "data", "mode": "JPEG quality and training mode", "latent": "learned latents (--input latent)",
          "model": "model and optimisation", "run": "run"}
_PARSERS = {"int": int, "float": float, "str": str, "tuple[int, ...]": str, "tuple[str, ...]": str}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def setup_args() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdomain-train", description="Train a network directly on compressed images.")
    parser.add_argument("--config", type=Path, default=None, help="YAML file of options; flags override it")
    parser.add_argument("--list-models", action="store_true", help="print the models for --task and --input and exit")
    groups = {key: parser.add_argument_group(title) for key, title in GROUPS.items()}
    for item in fields(TrainConfig):
        kind = field_type(item)
        if kind == "dict":
            continue  # YAML only
        group = groups[item.metadata["group"]]
        default = item.default if not callable(getattr(item, "default_factory", None)) else item.default_factory()
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f"{item.metadata['help']} (default: {shown})" if shown not in (None, False) else item.metadata["help"]
        if kind == "bool":
            group.add_argument(flag(item.name), dest=item.name, action="store_const", const=True, default=None,
                               help=help_text)
        else:
            group.add_argument(flag(item.name), dest=item.name, type=_PARSERS[kind], default=None,
                               choices=item.metadata["choices"], help=help_text,
                               metavar=None if item.metadata["choices"] else item.name.upper())
    return parser


def parse_config(argv: Sequence[str] | None = None) -> tuple[TrainConfig, bool]:
    """The config the flags (and ``--config`` YAML) describe, and whether to list models only."""
    args = setup_args().parse_args(argv)
    given = {key: value for key, value in vars(args).items() if key not in ("config", "list_models") and value is not None}
    if given.get("resume"):
        from cdomain.train.driver import resume_config

        if "output" not in given:
            raise ConfigError("resume", "needs --output, the folder of the run to continue")
        return resume_config(given.pop("output"), **given), args.list_models
    if args.config is not None:
        return TrainConfig.from_yaml(args.config, **given), args.list_models
    return TrainConfig.from_mapping(given, source="flags"), args.list_models


def train(argv: Sequence[str] | None) -> None:
    config, list_only = parse_config(argv)
    if list_only:
        from cdomain.models import list_models_for
        from cdomain.train.engine import get_task

        print("\n".join(list_models_for(config.input, get_task(config.task).model_task)))
        return
    from cdomain.train import run

    run(config)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cdomain-train", lambda: train(argv), resumable=True,
                       interrupted="; --resume --output DIR continues from the last completed epoch")


if __name__ == "__main__":
    sys.exit(main())
