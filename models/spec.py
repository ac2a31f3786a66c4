"""InputSpec: the one description of what a network reads, declared by every model.

A model states its input once (``model.input_spec``); the data side builds its loader from that
same object (:func:`cdomain.data.make_loader`), and checkpoints store it, so the layout, FBS
size and task never have to be repeated as flags or re-read from string-keyed dicts.

Fields:

``input``    ``"rgb"``, ``"dct"`` or ``"latent"``
``layout``   ``"rgb"`` (``[B, 3, H, W]``), ``"merged"`` (``[B, 3n, H/8, W/8]``), ``"split"``
             (``y [B, n, H/8, W/8]``, ``cbcr [B, 2n, H/16, W/16]``) or ``"latent"``
             (``y_hat``, ``sigma_hat``, each ``[B, M, H/16, W/16]``)
``fbs``      n, the lowest zigzag frequencies kept per colour component, or ``None``
``channels`` channels of the input (an int), or one int per input tensor (a tuple)
``stride``   pixels per input position, an int or one per input tensor
``task``     ``"classification"``, ``"density"`` (density maps for counting), ``"segmentation"``
             (per-pixel class scores) or ``"correction"`` (artifact correction: corrected
             coefficients, :mod:`cdomain.models.artifact`)
``output_stride``  pixels per output cell of a density or segmentation network, else ``None``
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["InputSpec", "INPUT_KINDS", "LAYOUT_INPUT"]

#: What a network can read.
INPUT_KINDS = ("dct", "rgb", "latent")
#: The input kind each layout belongs to.
LAYOUT_INPUT = {"rgb": "rgb", "merged": "dct", "split": "dct", "latent": "latent"}
_TASKS = ("classification", "density", "segmentation", "correction")


def _ints(value: Any, name: str) -> int | tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        items = tuple(value)
        if not items or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items):
            raise ValueError(f"input spec {name} must be positive ints, got {value!r}")
        return items
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"input spec {name} must be a positive int, got {value!r}")
    return value


@dataclass(frozen=True)
class InputSpec:
    """What a network's ``forward`` takes; see the module docstring for each field."""

    input: str
    layout: str
    fbs: int | None = None
    channels: int | tuple[int, ...] | None = None
    stride: int | tuple[int, ...] | None = None
    task: str = "classification"
    output_stride: int | None = None

    def __post_init__(self) -> None:
        if self.input not in INPUT_KINDS:
            raise ValueError(f"input spec: input must be one of {', '.join(INPUT_KINDS)}, got {self.input!r}")
        if LAYOUT_INPUT.get(self.layout) != self.input:
            raise ValueError(f"input spec: layout {self.layout!r} does not belong to {self.input} input")
        if self.task not in _TASKS:
            raise ValueError(f"input spec: task must be one of {', '.join(_TASKS)}, got {self.task!r}")
        if self.fbs is not None and (isinstance(self.fbs, bool) or not isinstance(self.fbs, int) or not 1 <= self.fbs <= 64):
            raise ValueError(f"input spec: fbs must be an int in 1..64, got {self.fbs!r}")
        if (self.fbs is None) != (self.input != "dct"):
            raise ValueError(f"input spec: fbs is required for dct input and only for it, got {self.fbs!r}")
        object.__setattr__(self, "channels", _ints(self.channels, "channels"))
        object.__setattr__(self, "stride", _ints(self.stride, "stride"))
        object.__setattr__(self, "output_stride", _ints(self.output_stride, "output_stride"))

    @classmethod
    def from_dict(cls, data: Any) -> "InputSpec":
        """Rebuild a spec from :meth:`as_dict` output (e.g. a checkpoint header); ValueError if malformed."""
        if not isinstance(data, dict):
            raise ValueError(f"input spec must be a mapping, got {type(data).__name__}")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"input spec has unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as error:
            raise ValueError(f"input spec is incomplete: {error}") from None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields (tuples become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    def replace(self, **changes: Any) -> "InputSpec":
        return InputSpec(**{**asdict(self), **changes})

    # Read-only mapping access, so ``spec["layout"]`` reads like the field it names.
    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.__dataclass_fields__ else default
