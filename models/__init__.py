"""Networks for compressed-domain inputs (installed as ``cdomain.models``).

Use the registry: ``create_model(name, num_classes=..., fbs=...)``, ``list_models()`` and
``model_config(model)``; every model describes its input in ``model.input_spec``.
"""

from .base import ClassifierNet, check_fbs, example_inputs
from .complexity import count_macs, count_params
from .registry import create_model, is_model, list_models, list_models_for, model_config, register_model
from .spec import INPUT_KINDS, InputSpec

# Importing the family modules registers their entry points.
from . import artifact, cresnet, csrnet, resnet, resnet_dct, sasnet, unet  # noqa: E402,F401  isort: skip

__all__ = [
    "INPUT_KINDS",
    "InputSpec",
    "ClassifierNet",
    "check_fbs",
    "count_macs",
    "count_params",
    "create_model",
    "example_inputs",
    "is_model",
    "list_models",
    "list_models_for",
    "model_config",
    "register_model",
]
