"""A folder of bitstream files read as latents: the alternative to a precomputed latent cache.

:class:`BitstreamFiles` gives ``files[i] -> (y_hat, sigma_hat, label)`` exactly as
:class:`~cdomain.latents.cache.LatentCache` does, but entropy-decodes each container when it is
read (:func:`~cdomain.latents.bitstream.read_latents`: z, ``h_s``, y; never ``g_s``), so a data
set that arrives as learned-codec bitstreams trains and evaluates without pixels and without a
cache. In a :class:`~cdomain.latents.loader.LatentLoader` with workers the decoding runs in the
worker processes.

Opening reads every file's fixed header (not its strings) and checks it names ``codec``; a file
written by another codec raises :class:`~cdomain.latents.bitstream.BitstreamError` naming the
file and the codec it needs, before any batch is drawn. The mean real bits per pixel (whole
files, header included, over the unpadded pixels) comes from the headers and file sizes.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from cdomain.data.folder import SampleList, image_folder
from cdomain.latents.bitstream import BitstreamError, check_codec, codec_key, read_header, read_latents
from cdomain.latents.codecs import ensure_entropy_tables
from cdomain.latents.compress import SUFFIX


def bitstream_samples(source: str | os.PathLike[str] | SampleList, split: str | None = None) -> SampleList:
    """The bitstream files of ``source``: a sample list as it is, or an ImageFolder tree of
    ``.cdlb`` files (its ``split`` sub-folder when that exists)."""
    if isinstance(source, SampleList):
        return source
    root = Path(source)
    if split is not None and (root / split).is_dir():
        root = root / split
    return image_folder(root, (SUFFIX,))


class BitstreamFiles:
    """Random access to bitstream files: ``files[i] -> (y_hat, sigma_hat, label)``, float32 ``[M, h, w]``."""

    def __init__(self, source: str | os.PathLike[str] | SampleList, codec: torch.nn.Module, *,
                 split: str | None = None) -> None:
        self.samples = bitstream_samples(source, split)
        if not len(self.samples):
            raise BitstreamError(str(source), "no bitstream files")
        self.codec = ensure_entropy_tables(codec.eval())
        self.key = codec_key(self.codec)
        pixels, bpp = [], []
        for path in self.samples.paths:
            header = read_header(path)
            check_codec(header, self.codec, path, key=self.key)
            height, width = header.image_size
            pixels.append(height * width)
            bpp.append(8.0 * os.path.getsize(path) / (height * width))
        self.pixels = pixels
        paths = self.samples.paths
        self.directory = Path(os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0]))
        name = split if split is not None else (Path(source).name if isinstance(source, (str, os.PathLike)) else None)
        self.index = {"split": name, "bpp": sum(bpp) / len(bpp), "likelihood_bpp": None,
                      "num_samples": len(paths), "classes": list(self.samples.classes)}

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.samples.classes

    @property
    def latent_channels(self) -> int:
        return int(self.codec.M)

    def describe(self, index: int) -> str:
        return self.samples.paths[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        y_hat, sigma_hat = read_latents(self.samples.paths[index], self.codec, key=self.key)
        return y_hat[0], sigma_hat[0].float(), int(self.samples.labels[index])
