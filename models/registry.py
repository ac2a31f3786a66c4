"""Registry of named model entry points.

Names map to small factory functions (``@register_model``); the classes live in their family
modules. :func:`create_model` records the resolved arguments on the model so that
:func:`model_config` can rebuild it later (for example from a checkpoint) with
``create_model(**model_config(model))``.
"""

from __future__ import annotations

import fnmatch
import inspect
from typing import Any, Callable

from torch import nn

__all__ = ["register_model", "create_model", "list_models", "list_models_for", "model_config", "is_model"]

_ENTRY_POINTS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its ``__name__``; a second registration of a name is an error."""
    name = fn.__name__
    if name in _ENTRY_POINTS:
        raise ValueError(f"model name {name!r} is already registered")
    _ENTRY_POINTS[name] = fn
    return fn


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by a shell-style pattern (``"*dct*"``)."""
    names = sorted(_ENTRY_POINTS)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names


def is_model(name: str) -> bool:
    return name in _ENTRY_POINTS


def _resolve_kwargs(name: str, fn: Callable[..., nn.Module], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Bind ``kwargs`` to the entry point's signature and fill in its defaults."""
    sig = inspect.signature(fn)
    params = sig.parameters
    takes_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if "fbs" in kwargs and kwargs["fbs"] is None:  # "no choice made": the entry point's default, if any
        kwargs = {k: v for k, v in kwargs.items() if k != "fbs"}
    if "fbs" in kwargs and "fbs" not in params:
        raise ValueError(
            f"model {name!r} does not take DCT input, so 'fbs' (frequency band selection) "
            f"does not apply to it"
        )
    unknown = [k for k in kwargs if k not in params]
    if unknown and not takes_var_kw:
        known = [p for p in params if params[p].kind is not inspect.Parameter.VAR_KEYWORD]
        raise ValueError(f"model {name!r} got unknown argument(s) {unknown}; it accepts {known}")
    bound = sig.bind(**kwargs)
    bound.apply_defaults()
    resolved: dict[str, Any] = {}
    for key, value in bound.arguments.items():
        if params[key].kind is inspect.Parameter.VAR_KEYWORD:
            resolved.update(value)
        else:
            resolved[key] = value
    return resolved


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``.

    Common arguments: ``num_classes`` for every model, ``fbs`` (the number n of lowest zigzag
    frequencies kept per colour component) for DCT models; ``fbs=None`` means the entry point's
    default and is accepted by every model, any other ``fbs`` by DCT models only. Unknown names
    and invalid arguments raise ``ValueError`` naming what is accepted.
    """
    if name not in _ENTRY_POINTS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    fn = _ENTRY_POINTS[name]
    resolved = _resolve_kwargs(name, fn, kwargs)
    model = fn(**resolved)
    model.model_name = name
    model.model_kwargs = resolved
    return model


def model_config(model: nn.Module) -> dict[str, Any]:
    """``{"name": ..., **kwargs}`` that rebuilds ``model`` with ``create_model(**config)``.

    ``num_classes`` follows the model's current head, so a model whose classifier was reset
    rebuilds with the new head.
    """
    name = getattr(model, "model_name", None)
    if name is None:
        raise ValueError("model was not built by create_model, so its configuration is unknown")
    config = {"name": name, **model.model_kwargs}
    if "num_classes" in config and hasattr(model, "num_classes"):
        config["num_classes"] = model.num_classes
    return config


def list_models_for(input: str, task: str = "classification") -> list[str]:
    """Registered models that read ``input`` (``"dct"``, ``"rgb"``, ``"latent"``) for ``task``
    (the InputSpec task: ``"classification"``, ``"density"`` or ``"segmentation"``)."""
    import torch

    names = []
    for name in list_models():
        try:
            with torch.device("meta"):  # only the input spec is needed: allocate nothing
                spec = create_model(name, fbs=None).input_spec
        except (TypeError, ValueError):
            continue
        if spec.input == input and spec.task == task:
            names.append(name)
    return names
