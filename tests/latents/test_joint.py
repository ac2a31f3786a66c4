"""Joint fine-tuning: encoder weights change, g_s does not, bitstreams stay decodable."""

from __future__ import annotations

import torch
from torch import nn

from tests.latents import require_compressai

require_compressai()

from cdomain.latents.codecs import load_codec, save_codec  # noqa: E402
from cdomain.latents.encode import compress, decode_latents, decompress, encode  # noqa: E402
from cdomain.latents.images import ImageLoader, load_rgb  # noqa: E402
from cdomain.latents.joint import JointConfig, JointLearner  # noqa: E402
from cdomain.train.engine import OptimConfig, fit  # noqa: E402

DATA = "textures-tiny"


class TinyHead(nn.Module):
    """A small classifier on (y_hat, sigma_hat), standing in for cResNet to keep the test fast."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(2 * channels)
        self.fc = nn.Linear(2 * channels, classes)

    def forward(self, y_hat, sigma_hat):
        x = self.norm(torch.cat([y_hat, sigma_hat], 1))
        return self.fc(x.mean((2, 3)))


def test_joint_changes_encoder_and_keeps_bitstreams_decodable(tmp_path, codec):
    before = {name: value.clone() for name, value in codec.state_dict().items()}
    full = ImageLoader(DATA, split="train")
    subset = [(path, label) for path, label in zip(full.samples.paths, full.samples.labels)][::2]  # 40 images
    train = ImageLoader(subset[:32], batch_size=16, augment=True, seed=0)
    val = ImageLoader(subset[32:], batch_size=8, augment=False)
    head = TinyHead(24, 10)
    config = JointConfig(lambda_rate=0.1, lambda_dist=0.001, codec_lr=1e-3, resize=8, crop=6)
    learner = JointLearner(codec, head, config, OptimConfig(optimizer="adamw", lr=1e-2), steps_per_epoch=len(train),
                           epochs=2, device=torch.device("cpu"))
    history = fit(learner, train, val, epochs=2)
    assert [record["epoch"] for record in history] == [1, 2]
    for key in ("train_loss", "train_ce", "train_bpp", "train_acc", "val_loss", "val_acc", "val_bpp",
                "val_likelihood_bpp", "lr", "seconds"):
        assert history[-1][key] is not None and history[-1][key] >= 0, key
    after = codec.state_dict()
    for prefix in ("g_a.", "h_a.", "h_s.", "entropy_bottleneck.quantiles", "entropy_bottleneck.matrices"):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix)), prefix
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("g_s."))

    images = torch.stack([load_rgb(path) for path in val.samples.paths[:4]])
    compressed = compress(codec, images)
    assert torch.equal(decode_latents(codec, compressed), encode(codec, images).y_hat)
    assert decompress(codec, compressed).shape == images.shape

    path = save_codec(tmp_path / "joint.safetensors", codec)
    reloaded = load_codec(path)
    assert decompress(reloaded, compressed).shape == images.shape  # a saved codec decodes the same streams
    assert torch.equal(decode_latents(reloaded, compressed), encode(codec, images).y_hat)
