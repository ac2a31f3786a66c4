"""The one file format for everything cdomain trains: task networks and codecs alike.

A checkpoint is a single safetensors file. Its tensors are the object's state dict, plus the
input statistics (``input_stats.mean`` / ``input_stats.std``) of a task network; its metadata
holds one JSON entry, ``cdomain``, the typed :class:`Header`:

``format``      ``"cdomain-2"``
``kind``        ``"model"`` (a registry network) or ``"codec"`` (a CompressAI hyperprior)
``name``        registry name, or codec architecture (``"bmshj2018-hyperprior"``)
``args``        the arguments that rebuild it (``create_model(name, **args)``, or N, M, quality)
``input_spec``  what a model reads (:class:`~cdomain.models.spec.InputSpec`); null for codecs
``classes``     class names a classifier's outputs stand for (empty otherwise)
``info``        free JSON about how it was made (run, epoch, quality, seed)

:func:`load_checkpoint` validates the whole header, and checks every stored tensor's name and
shape against the object built on PyTorch's meta device (which allocates nothing), before any
real allocation: a hand-made header claiming 4e9 classes is refused, not allocated. Nothing is
unpickled. Every error is a :class:`~cdomain.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from cdomain.atomic import atomic_write
from cdomain.errors import CheckpointError
from cdomain.models.spec import InputSpec

FORMAT = "cdomain-2"
KINDS = ("model", "codec")
STATS_MEAN, STATS_STD = "input_stats.mean", "input_stats.std"
#: The largest header cdomain writes is a few KiB; anything far beyond is not ours.
MAX_HEADER_BYTES = 16 << 20
#: Integer arguments beyond this are refused before building (no real network needs them).
MAX_INT_ARG = 1 << 20
#: Class names beyond this many are refused (ImageNet-21k has 21,841).
MAX_CLASSES = 100_000


@dataclass(frozen=True)
class Header:
    """The typed metadata of a checkpoint (see the module docstring)."""

    kind: str
    name: str
    args: dict = field(default_factory=dict)
    input_spec: InputSpec | None = None
    classes: tuple[str, ...] = ()
    info: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "kind": self.kind, "name": self.name, "args": self.args,
            "input_spec": None if self.input_spec is None else self.input_spec.as_dict(),
            "classes": list(self.classes), "info": self.info,
        }, sort_keys=True)

    @property
    def task(self) -> str:
        """``"classification"``, ``"density"`` or ``"codec"``."""
        return "codec" if self.input_spec is None else self.input_spec.task


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt object (model or codec) and its header and statistics."""

    path: Path
    header: Header
    model: torch.nn.Module
    stats: Any = None  # cdomain.data.dct_transforms.ChannelStats of a task network, if stored

    @property
    def classes(self) -> tuple[str, ...]:
        return self.header.classes

    @property
    def info(self) -> dict:
        return self.header.info

    @property
    def input_spec(self) -> InputSpec | None:
        return self.header.input_spec


def save_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    *,
    stats: Any = None,
    classes: tuple[str, ...] | list[str] = (),
    info: dict | None = None,
) -> Path:
    """Write a task network (built by ``create_model``) or a codec to ``path``, atomically."""
    header, tensors = describe(model, classes=tuple(classes), info=info or {})
    if stats is not None:
        tensors[STATS_MEAN] = torch.from_numpy(stats.mean.copy())
        tensors[STATS_STD] = torch.from_numpy(stats.std.copy())
    return atomic_write(path, save_safetensors(tensors, metadata={"cdomain": header.to_json()}))


def describe(model: torch.nn.Module, *, classes: tuple[str, ...] = (), info: dict | None = None
             ) -> tuple[Header, dict[str, torch.Tensor]]:
    """The header and tensors that represent ``model``; codecs get fresh coder tables first."""
    if getattr(model, "cdomain_config", None) is not None:
        from cdomain.latents.codecs import codec_state

        config, tensors = codec_state(model)
        args = {key: value for key, value in config.items() if key != "architecture"}
        return Header("codec", config["architecture"], args, None, (), dict(info or {})), tensors
    from cdomain.models import model_config

    config = model_config(model)
    name = config.pop("name")
    tensors = {key: value.detach().cpu().contiguous().clone() for key, value in model.state_dict().items()}
    return Header("model", name, config, model.input_spec, tuple(classes), dict(info or {})), tensors


def read_header(path: str | os.PathLike[str]) -> Header:
    """Validate and return the header of the checkpoint at ``path`` without loading tensors."""
    path = Path(path)
    header, _ = _read_raw_header(path, _read_prefix(path))
    return header


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model or codec saved at ``path``; every problem raises CheckpointError."""
    path = Path(path)
    data = _read_file(path)
    header, shapes = _read_raw_header(path, data)
    stats = None
    if header.kind == "model":
        model = _build_model(path, header, shapes)
    else:
        model = None  # codecs resize their coder-table buffers while loading: built after reading
    try:
        tensors = load_safetensors(data)
    except Exception as error:  # safetensors raises its own error types for corrupt data
        raise CheckpointError(f"{path}: corrupt checkpoint tensors ({error})") from None
    if STATS_MEAN in tensors or STATS_STD in tensors:
        from cdomain.data.dct_transforms import ChannelStats

        try:
            stats = ChannelStats(tensors.pop(STATS_MEAN).numpy(), tensors.pop(STATS_STD).numpy())
        except (KeyError, ValueError, TypeError) as error:  # TypeError: a dtype numpy lacks (bfloat16)
            raise CheckpointError(f"{path}: malformed input statistics ({error})") from None
        spec = header.input_spec
        expected = (3 * spec.fbs) if spec is not None and spec.input == "dct" else 3
        if stats.mean.size != expected:
            raise CheckpointError(f"{path}: input statistics have {stats.mean.size} channels, the model reads {expected}")
    if header.kind == "model":
        built = model.state_dict()
        wrong = [key for key, value in built.items() if tensors[key].dtype != value.dtype]
        if wrong:  # assign=True would keep the stored dtype: refuse rather than mix float16 into a float32 network
            key = wrong[0]
            raise CheckpointError(f"{path}: weights do not fit {header.name}: {key} is {tensors[key].dtype}, "
                                  f"expected {built[key].dtype}")
        model.load_state_dict(tensors, strict=True, assign=True)
        if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):  # a tensor outside the state dict
            from cdomain.models import create_model

            model = create_model(header.name, **header.args)
            model.load_state_dict(tensors, strict=True)
    else:
        from cdomain.latents.codecs import codec_from_state

        model = codec_from_state(path, header.name, header.args, tensors)
    return Checkpoint(path, header, model.to(map_location), stats)


# ---------------------------------------------------------------------------- internals


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file") from None
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read checkpoint: {error.strerror or error}") from None


def _read_prefix(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
            size = int.from_bytes(head, "little") if len(head) == 8 else 0
            return head + handle.read(min(size, MAX_HEADER_BYTES + 1))
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file") from None
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read checkpoint: {error.strerror or error}") from None


def _read_raw_header(path: Path, data: bytes) -> tuple[Header, dict[str, tuple[int, ...]]]:
    """Parse the safetensors header by hand (bounded), then the cdomain header inside it."""
    if len(data) < 10:
        raise CheckpointError(f"{path}: not a cdomain checkpoint (file too short)")
    size = int.from_bytes(data[:8], "little")
    if size > MAX_HEADER_BYTES or size > len(data) - 8 or data[8:9] != b"{":
        raise CheckpointError(f"{path}: not a cdomain checkpoint (no safetensors header)")
    try:
        raw = json.loads(data[8 : 8 + size])
        metadata = raw.pop("__metadata__", None) or {}
        document = json.loads(metadata["cdomain"])
    except KeyError:
        raise CheckpointError(f"{path}: a safetensors file, but not a cdomain checkpoint (no cdomain header)") from None
    except (ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{path}: unreadable checkpoint header ({error})") from None
    header = _validate_header(path, document)
    try:
        shapes = {name: tuple(int(d) for d in entry["shape"]) for name, entry in raw.items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise CheckpointError(f"{path}: malformed tensor table in the safetensors header") from None
    return header, shapes


def _validate_header(path: Path, document: Any) -> Header:
    def fail(message: str) -> CheckpointError:
        return CheckpointError(f"{path}: invalid checkpoint header: {message}")

    if not isinstance(document, dict):
        raise fail("not a JSON object")
    if document.get("format") != FORMAT:
        raise fail(f"format {document.get('format')!r}, expected {FORMAT!r}")
    kind, name, args = document.get("kind"), document.get("name"), document.get("args")
    if kind not in KINDS:
        raise fail(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if not isinstance(name, str) or not name:
        raise fail("no name")
    if not isinstance(args, dict):
        raise fail("args is not an object")
    for key, value in args.items():
        _check_arg(fail, key, value)
    classes = document.get("classes", [])
    if not isinstance(classes, list) or len(classes) > MAX_CLASSES or not all(isinstance(c, str) for c in classes):
        raise fail(f"classes must be a list of at most {MAX_CLASSES} names")
    info = document.get("info", {})
    if not isinstance(info, dict):
        raise fail("info is not an object")
    spec = None
    if kind == "model":
        try:
            spec = InputSpec.from_dict(document.get("input_spec"))
        except ValueError as error:
            raise fail(str(error)) from None
        num_classes = args.get("num_classes")
        if classes and spec.task in ("classification", "segmentation") and num_classes != len(classes):
            raise fail(f"num_classes {num_classes} but {len(classes)} class names")
    return Header(kind, name, args, spec, tuple(classes), info)


def _check_arg(fail, key: str, value: Any) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) > MAX_INT_ARG:
            raise fail(f"argument {key}={value} is out of range (at most {MAX_INT_ARG})")
        return
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) > MAX_INT_ARG:
            raise fail(f"argument {key}={value} is out of range")
        return
    if isinstance(value, list) and len(value) <= 64:
        for item in value:
            _check_arg(fail, key, item)
        return
    raise fail(f"argument {key} has an unsupported value {str(value)[:40]!r}")


def _build_model(path: Path, header: Header, shapes: dict[str, tuple[int, ...]]) -> torch.nn.Module:
    from cdomain.models import create_model, is_model

    if not is_model(header.name):
        raise CheckpointError(f"{path}: unknown model {header.name!r} (not registered in cdomain.models)")
    try:
        with torch.device("meta"):
            model = create_model(header.name, **header.args)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot build {header.name} from the stored arguments ({error})") from None
    if model.input_spec != header.input_spec:
        raise CheckpointError(f"{path}: stored input spec does not match {header.name} built from its arguments")
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    stored = {key: shape for key, shape in shapes.items() if key not in (STATS_MEAN, STATS_STD)}
    missing, unexpected = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit {header.name}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    wrong = [key for key in expected if expected[key] != stored[key]]
    if wrong:
        key = wrong[0]
        raise CheckpointError(f"{path}: weights do not fit {header.name}: {key} is {stored[key]}, expected {expected[key]}")
    return model


def check_fits(checkpoint: Checkpoint, classes: tuple[str, ...], model_task: str, input_kind: str | None,
               what: str) -> None:
    """CheckpointError unless ``checkpoint`` is a network for this task, input and these classes.

    ``what`` names where the checkpoint came from in the message (``--init``, ``--resume``, a path).
    """
    header, path = checkpoint.header, checkpoint.path
    if header.kind != "model":
        raise CheckpointError(f"{what} {path}: a codec checkpoint, not a task network")
    if header.task != model_task:
        raise CheckpointError(f"{what} {path}: a {header.task} network, but the data is for {model_task}")
    if input_kind is not None and header.input_spec.input != input_kind:
        raise CheckpointError(f"{what} {path}: the network reads {header.input_spec.input} input, not {input_kind}")
    if model_task in ("classification", "segmentation") and tuple(header.classes) != tuple(classes):
        stored, given = list(header.classes), list(classes)
        if len(stored) != len(given):
            detail = f"{len(stored)} classes, the data has {len(given)}"
        else:
            first = next(i for i, (a, b) in enumerate(zip(stored, given)) if a != b)
            detail = f"class {first} is {stored[first]!r} there and {given[first]!r} in the data"
        raise CheckpointError(f"{what} {path}: the checkpoint does not fit the data: {detail}")
