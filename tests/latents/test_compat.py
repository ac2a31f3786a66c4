"""import_compressai: works without torchvision (missing or broken) and leaves no placeholders behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.latents import require_compressai

require_compressai()

from cdomain.latents.compat import OPTIONAL_PACKAGES, import_compressai  # noqa: E402


def test_placeholders_are_removed_after_import():
    compressai = import_compressai()
    assert set(compressai.cdomain_placeholders) <= set(OPTIONAL_PACKAGES)
    for name in compressai.cdomain_placeholders:
        assert name not in sys.modules  # a later "import torchvision" behaves as without cdomain
    from compressai.zoo import bmshj2018_hyperprior

    assert bmshj2018_hyperprior(1).M == 192  # pretrained=False: nothing is downloaded


def test_placeholder_features_raise_import_error():
    compressai = import_compressai()
    if "torchvision" not in compressai.cdomain_placeholders:
        pytest.skip("torchvision is installed and importable here")
    import compressai.registry.transforms as transforms

    with pytest.raises(ImportError, match="torchvision is not installed"):
        transforms.torchvision.transforms.ToTensor  # noqa: B018


def test_broken_torchvision_is_replaced(tmp_path):
    # torchvision built for another torch fails at import ("operator torchvision::nms does not exist")
    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    code = textwrap.dedent("""
        import sys
        import cdomain.latents
        import compressai
        print(sorted(compressai.cdomain_placeholders), "torchvision" in sys.modules)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "'torchvision'" in result.stdout and result.stdout.strip().endswith("False")
