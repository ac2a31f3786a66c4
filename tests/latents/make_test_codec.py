"""Regenerate the small trained codec the latent tests use: ``python -m tests.latents.make_test_codec``.

bmshj2018-hyperprior with N=16, M=24 (the zoo's quality 8 lambda, 0.18), 600 Adam steps at lr
3e-3 on 8 random 64x64 crops of the embedded ``textures`` training images, one thread, seed 0
(about a minute on one core). Saved without its entropy coder tables (they are recomputed on
load), about 330 KB. Training a codec inside the default test run would take most of its time.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cdomain.latents.codec_train import CodecTrainConfig, train_codec
from cdomain.latents.codecs import build_codec, save_codec

PATH = Path(__file__).parent / "data" / "codec-n16-m24.safetensors"
CONFIG = CodecTrainConfig(steps=600, batch_size=8, crop=64, lr=3e-3, seed=0)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_codec("bmshj2018-hyperprior", 8, N=16, M=24)
    summary = train_codec(model, "textures", CONFIG, progress=True)
    save_codec(PATH, model, info={"made_by": "tests/latents/make_test_codec.py", **summary}, tables=False)
    print(f"{PATH}: {summary}")


if __name__ == "__main__":
    main()
