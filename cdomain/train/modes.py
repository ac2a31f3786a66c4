"""Training modes as a plan of phases: which JPEG quality each phase trains and validates at.

- ``standard``: one phase at ``--quality`` (or the original files).
- ``npt`` (no pre-training curriculum, the baseline of the CPT study): initialise from a
  checkpoint trained at q0, fine-tune at the target quality.
- ``cpt`` (curriculum pre-training): the prefix of the curriculum down to the target quality,
  one phase per quality; weights cascade from phase to phase while the optimizer state, the
  learning-rate schedule and the weight decay restart at every phase.
- ``jpeg-aug``: one phase whose training images are each re-encoded at a random quality.
- ``joint``: one phase in which a codec's encoder side trains with the network (latent input).
- ``ac`` / ``ttac``: one phase that trains an artifact corrector on images re-encoded at random
  qualities, validated at ``--quality`` (:mod:`cdomain.train.correction`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from cdomain.train.config import DEFAULT_CURRICULUM, MODES


@dataclass(frozen=True)
class Phase:
    """One stretch of training with a fresh optimizer and schedule."""

    name: str
    train_quality: int | None  # None: the original files
    val_quality: int | None
    epochs: int


def curriculum_prefix(curriculum: Sequence[int], target: int) -> list[int]:
    """The curriculum from its start down to and including ``target``."""
    qualities = [int(q) for q in curriculum]
    if any(not 1 <= q <= 100 for q in qualities):
        raise ValueError(f"curriculum qualities must be in 1..100, got {qualities}")
    if any(a <= b for a, b in zip(qualities, qualities[1:])):
        raise ValueError(f"the curriculum must be strictly decreasing, got {qualities}")
    if target not in qualities:
        raise ValueError(f"target quality {target} is not in the curriculum {qualities}")
    return qualities[: qualities.index(target) + 1]


def plan_phases(
    mode: str,
    *,
    epochs: int,
    quality: int | None = None,
    target_quality: int | None = None,
    curriculum: Sequence[int] = DEFAULT_CURRICULUM,
) -> list[Phase]:
    """The phases of ``mode``; ``epochs`` is per phase."""
    if mode in ("standard", "joint"):
        return [Phase("train", quality, quality, epochs)]
    if mode in ("jpeg-aug", "ac", "ttac"):
        return [Phase("train", None, quality, epochs)]
    target = target_quality if target_quality is not None else quality
    if target is None:
        raise ValueError(f"--mode {mode} needs --target-quality (the quality to end at)")
    if mode == "npt":
        return [Phase(f"q{target}", target, target, epochs)]
    if mode == "cpt":
        return [Phase(f"q{q}", q, q, epochs) for q in curriculum_prefix(curriculum, target)]
    raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
