"""The wheel installs everything under cdomain/: kernels and models never as top-level packages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def declared_packages() -> dict[str, Path]:
    """Installed package name -> source folder, from pyproject's package-dir mapping."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config["package-dir"]
    result = {}
    for package in config["packages"]:
        best = max((p for p in mapping if package == p or package.startswith(p + ".")), key=len)
        rest = package[len(best) :].lstrip(".").replace(".", "/")
        result[package] = ROOT / mapping[best] / rest
    return result


def test_every_source_package_is_declared():
    declared = {path.resolve() for path in declared_packages().values()}
    for top in ("cdomain", "kernels", "models"):
        for init in (ROOT / top).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                assert init.parent.resolve() in declared, f"{init.parent} is missing from pyproject packages"


def test_torch_is_a_range_and_the_cpu_extra_pins_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_requirement = next(r for r in project["dependencies"] if r.startswith("torch"))
    assert ">=" in torch_requirement and "==" not in torch_requirement
    assert project["optional-dependencies"]["cpu"] == ["torch==2.13.0"]


@pytest.mark.parametrize("import_name", ["cdomain.kernels", "cdomain.models"])
def test_subpackages_import_under_cdomain(import_name):
    module = __import__(import_name, fromlist=["_"])
    assert module.__name__ == import_name


def test_wheel_contains_only_cdomain(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    if result.returncode != 0 and "No module named" in result.stderr:
        pytest.skip(f"cannot build without isolation here: {result.stderr.strip()[-200:]}")
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = tmp_path.glob("cdomain-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"cdomain", next(t for t in tops if t.endswith(".dist-info"))}
    for module in ("cdomain/kernels/cpu.py", "cdomain/kernels/reference.py", "cdomain/models/registry.py", "cdomain/jpeg/reader.py"):
        assert module in names
