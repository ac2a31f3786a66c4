"""Learned-compression latents: CompressAI hyperprior codecs, ``(y_hat, sigma_hat)``, real bpp.

Needs CompressAI 1.2.8 without its declared dependencies (which would replace a CPU PyTorch
with a CUDA build and add torchvision)::

    pip install -e ".[latent]" && pip install --no-deps compressai==1.2.8

:mod:`cdomain.latents.compat` explains how CompressAI is imported without torchvision.

- :mod:`~cdomain.latents.codecs`: build (untrained), load (CompressAI ``.pth.tar`` or cdomain
  safetensors) and save codecs; CompressAI's MSE lambdas.
- :mod:`~cdomain.latents.codec_train`: rate-distortion training (``cdomain-prepare codec``).
- :mod:`~cdomain.latents.encode`: ``encode(model, images) -> Latents`` (y_hat, sigma_hat,
  padding, likelihood bits); ``compress``/``decompress`` for real bitstreams.
- :mod:`~cdomain.latents.cache`: resumable safetensors shards of latents
  (``cdomain-prepare latents``); :mod:`~cdomain.latents.loader`: ``LatentLoader``.
- :mod:`~cdomain.latents.bitstream`: the per-image bitstream container and ``read_latents``
  (``(y_hat, sigma_hat)`` from a bitstream, without ``g_s``); :mod:`~cdomain.latents.compress`:
  a data set as bitstream files (``cdomain-prepare compress``);
  :mod:`~cdomain.latents.bitstream_files`: such a folder read as latents (``LatentLoader`` with
  ``codec=``, ``cdomain-train --input latent --data <folder>``).
- :mod:`~cdomain.latents.joint`: joint fine-tuning of encoder and task network;
  :mod:`~cdomain.latents.train`: the ``cdomain-train --input latent`` path.
"""

from cdomain.latents.compat import compressai_available, import_compressai

if compressai_available():
    import_compressai()

from cdomain.latents.bitstream import read_latents  # noqa: E402
from cdomain.latents.cache import LatentCache, write_latents  # noqa: E402
from cdomain.latents.codecs import (  # noqa: E402
    ARCHITECTURES,
    MSE_LAMBDAS,
    build_codec,
    load_codec,
    refresh_entropy_tables,
    save_codec,
    save_compressai_checkpoint,
)
from cdomain.latents.encode import Compressed, Latents, compress, decompress, encode  # noqa: E402
from cdomain.latents.loader import LatentLoader  # noqa: E402

__all__ = [
    "ARCHITECTURES",
    "Compressed",
    "LatentCache",
    "LatentLoader",
    "Latents",
    "MSE_LAMBDAS",
    "build_codec",
    "compress",
    "compressai_available",
    "decompress",
    "encode",
    "import_compressai",
    "load_codec",
    "read_latents",
    "refresh_entropy_tables",
    "save_codec",
    "save_compressai_checkpoint",
    "write_latents",
]
