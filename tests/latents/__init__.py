"""Tests of cdomain.latents (skipped with the reason when CompressAI is not installed)."""

import pytest

from cdomain.latents.compat import INSTALL_HINT, compressai_available


def require_compressai() -> None:
    """Skip the calling test module unless CompressAI and its runtime needs are installed."""
    if not compressai_available():
        pytest.skip(f"CompressAI 1.2.8 is not installed ({INSTALL_HINT})", allow_module_level=True)
