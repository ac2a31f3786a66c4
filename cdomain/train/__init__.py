"""Training: one typed config (:class:`TrainConfig`), one driver (:func:`run`), one epoch loop.

``cdomain.train.run(TrainConfig(input="dct", fbs=16, epochs=5))`` trains exactly as
``cdomain-train --input dct --fbs 16 --epochs 5`` does; the command only parses flags into the
config.
"""

from __future__ import annotations

from cdomain.train.config import TrainConfig

__all__ = ["TrainConfig", "run"]


def run(config: TrainConfig, **kwargs) -> dict:
    """Train as ``config`` says; returns the run's summary (see :mod:`cdomain.train.driver`)."""
    from cdomain.train.driver import run as run_training

    return run_training(config, **kwargs)
