"""Import CompressAI on a CPU-only PyTorch without torchvision, torch_geometric, pandas or requests.

CompressAI 1.2.8 (``pip install --no-deps compressai==1.2.8``) runs its whole package at
``import compressai``, and four of the modules that pulls in import packages cdomain never uses:

==================  ==================================================  ==========================
package             imported by (CompressAI 1.2.8)                      used for
==================  ==================================================  ==========================
torchvision         ``registry/transforms.py``                          a name table of transforms
torch_geometric     ``registry/transforms.py``, ``transforms/point/*``  point-cloud transforms
pandas              ``datasets/pointcloud/shapenet.py``                 the ShapeNet data set
requests            ``datasets/utils.py``                               data set downloads
==================  ==================================================  ==========================

Its declared dependencies would install all four, and torchvision's wheel replaces a CPU
PyTorch with a multi-GB CUDA build (or, installed beside it, fails to import with
"operator torchvision::nms does not exist"). The image codecs need none of them; they need
``scipy`` (the Gaussian conditional's scale table) and ``pytorch-msssim`` (imported by the
rate-distortion loss module), which the ``latent`` extra installs.

:func:`import_compressai` therefore imports each of the four packages that is present and
working, and only for one that is missing or fails to import puts a placeholder module into
``sys.modules`` while ``compressai`` is imported. The placeholders are removed again right
after, so later ``import torchvision`` statements behave exactly as before; only CompressAI's
own references to them remain, and using any of those features raises :class:`ImportError`
naming the package to install.
"""

from __future__ import annotations

import importlib
import sys
import types

#: Packages CompressAI imports at package import time that cdomain does not use.
OPTIONAL_PACKAGES = ("torchvision", "torch_geometric", "pandas", "requests")

#: How to install what the image codecs do need.
INSTALL_HINT = 'pip install -e ".[latent]" && pip install --no-deps compressai==1.2.8'

_REQUIRED = {"scipy": "scipy", "pytorch_msssim": "pytorch-msssim"}


class _Missing(types.ModuleType):
    """A placeholder module: any attribute it does not define raises ImportError."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(
            f"{self.__name__}.{name}: {self.__name__.split('.')[0]} is not installed (or not importable); "
            f"cdomain imported CompressAI without it, so this CompressAI feature is unavailable"
        )


def _placeholder_class(module: str, name: str) -> type:
    def unavailable(self, *args, **kwargs):
        raise ImportError(f"{module}.{name}: {module.split('.')[0]} is not installed; this CompressAI feature is unavailable")

    return type(name, (), {"__init__": unavailable, "__call__": unavailable, "__module__": module})


def _functional_transform(name: str):
    """Stand-in for ``torch_geometric.data.datapipes.functional_transform``: a no-op decorator."""

    def decorate(cls):
        return cls

    return decorate


def _placeholders(package: str) -> dict[str, types.ModuleType]:
    """Modules that stand in for ``package`` and its submodules named in CompressAI's imports."""
    modules: dict[str, types.ModuleType] = {}

    def add(name: str, **attributes) -> types.ModuleType:
        module = _Missing(name)
        module.__path__ = []  # a package, so that submodule imports resolve to our entries
        module.__dict__.update(attributes)
        modules[name] = module
        return module

    root = add(package)
    if package == "torchvision":
        root.transforms = add("torchvision.transforms")
    elif package == "torch_geometric":
        root.transforms = add(
            "torch_geometric.transforms",
            BaseTransform=_placeholder_class("torch_geometric.transforms", "BaseTransform"),
            Center=_placeholder_class("torch_geometric.transforms", "Center"),
        )
        root.data = add("torch_geometric.data", Data=_placeholder_class("torch_geometric.data", "Data"))
        root.data.datapipes = add("torch_geometric.data.datapipes", functional_transform=_functional_transform)
    return modules


def _usable(package: str) -> bool:
    """Whether ``package`` imports; a broken installation is cleaned out of ``sys.modules``."""
    if package in sys.modules and not isinstance(sys.modules[package], _Missing):
        return True
    if importlib.util.find_spec(package) is None:
        return False
    try:
        importlib.import_module(package)
        if package in ("torchvision", "torch_geometric"):
            importlib.import_module(f"{package}.transforms")
        return True
    except Exception:  # a broken build raises RuntimeError/OSError/ImportError; all mean "not usable"
        for name in [name for name in sys.modules if name == package or name.startswith(package + ".")]:
            del sys.modules[name]
        return False


def import_compressai() -> types.ModuleType:
    """Import and return ``compressai``; raises ImportError with the install line if it is absent."""
    if "compressai" in sys.modules:
        return sys.modules["compressai"]
    if importlib.util.find_spec("compressai") is None:
        raise ImportError(f"learned-latent features need CompressAI 1.2.8; install it with: {INSTALL_HINT}")
    missing = [pip for module, pip in _REQUIRED.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ImportError(f"CompressAI needs {', '.join(missing)}; install with: {INSTALL_HINT}")
    installed: dict[str, types.ModuleType] = {}
    for package in OPTIONAL_PACKAGES:
        if not _usable(package):
            installed.update(_placeholders(package))
    sys.modules.update(installed)
    try:
        import compressai
    finally:
        for name, module in installed.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    compressai.cdomain_placeholders = tuple(sorted(name for name in installed if "." not in name))
    return compressai


def compressai_available() -> bool:
    """Whether :func:`import_compressai` can succeed (without importing anything)."""
    return importlib.util.find_spec("compressai") is not None and all(
        importlib.util.find_spec(module) is not None for module in _REQUIRED
    )
