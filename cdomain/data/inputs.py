"""make_loader: the one place that turns a model's InputSpec and a data source into a loader.

The training driver and the quality sweeps both build their loaders here, so a network is fed
in evaluation exactly as it was in training: DCT coefficients in the model's layout and FBS
size (:class:`~cdomain.data.loader.DCTLoader`), decoded pixels of the same crops
(:class:`~cdomain.data.loader.RGBLoader`), or cached codec latents
(:class:`~cdomain.latents.loader.LatentLoader`, ``source`` is then a latent cache folder, or
bitstream files when ``codec`` is given).
"""

from __future__ import annotations

from typing import Any

from cdomain.data.loader import EpochLoader
from cdomain.models.spec import InputSpec


def make_loader(
    spec: InputSpec,
    source: Any,
    *,
    train: bool,
    batch_size: int,
    crop: int | None = None,
    seed: int = 0,
    workers: int = 0,
    skip_bad: bool = False,
    stats: Any = None,
    transform: Any = None,
    target: Any = None,
    latent_resize: int | None = 32,
    latent_crop: int | None = 28,
    scale: tuple[int, int] | None = None,
    codec: Any = None,
    device: Any = None,
    strict: bool = True,
    transcode: Any = None,
) -> EpochLoader:
    """Batches for a network that reads ``spec``; training loaders augment, shuffle and drop a
    ragged last batch (unless that batch is all there is). ``device`` puts DCT inputs on the
    batch path (:class:`cdomain.data.loader.DCTLoader`'s ``device=``); other inputs ignore it."""
    if spec.input == "latent":
        from cdomain.latents.loader import LatentLoader

        loader = LatentLoader(source, batch_size=batch_size, resize=latent_resize, crop=latent_crop, augment=train,
                              seed=seed, workers=workers, codec=codec, skip_bad=skip_bad)
        loader.drop_last = train and len(loader.dataset) >= batch_size
        return loader
    from cdomain.data.loader import DCTLoader, RGBLoader

    kind = DCTLoader if spec.input == "dct" else RGBLoader
    options = {"fbs": spec.fbs, "layout": spec.layout, "device": device} if spec.input == "dct" else {}
    loader = kind(source, batch_size=batch_size, crop=crop, augment=train, seed=seed, workers=workers,
                  skip_bad=skip_bad, stats=stats, transform=transform, target=target, scale=scale,
                  strict=strict, transcode=transcode, **options)
    loader.drop_last = train and len(loader.dataset) >= batch_size
    return loader
