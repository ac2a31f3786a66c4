"""Networks for compressed-domain inputs (installed as ``cdomain.models``).

Use the registry: ``create_model(name, num_classes=..., fbs=...)``, ``list_models()`` and
``model_config(model)``; every model describes its input in ``model.input_spec``.
"""

from .base import ClassifierNet, check_fbs, example_inputs
from .complexity import count_macs, count_params
from .io import load_model, read_metadata, save_model
from .registry import create_model, is_model, list_models, model_config, register_model

# Importing the family modules registers their entry points.
from . import cresnet, csrnet, resnet, resnet_dct  # noqa: E402,F401  isort: skip

__all__ = [
    "ClassifierNet",
    "check_fbs",
    "count_macs",
    "count_params",
    "create_model",
    "example_inputs",
    "is_model",
    "list_models",
    "load_model",
    "model_config",
    "read_metadata",
    "register_model",
    "save_model",
]
