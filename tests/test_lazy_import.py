"""Reading coefficients needs neither PyTorch nor the loaders: ``import cdomain`` stays light."""

from __future__ import annotations

import subprocess
import sys

import cdomain


def test_read_coefficients_does_not_import_torch(tmp_path):
    from tests.helpers import photo_like
    from cdomain.jpeg.encode import write_jpeg

    path = tmp_path / "a.jpg"
    write_jpeg(photo_like(32, 32, seed=0), path, 90)
    code = ("import sys; from cdomain import read_coefficients; image = read_coefficients(sys.argv[1]); "
            "print(image.y.shape, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "False"


def test_every_public_name_resolves():
    assert set(cdomain.__all__) <= set(dir(cdomain))
    for name in cdomain.__all__:
        assert getattr(cdomain, name) is not None
