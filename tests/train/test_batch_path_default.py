"""The trainer reads DCT inputs through the batch path (DCTLoader's ``device=``) by default."""

from __future__ import annotations

from cdomain.data import batch_path
from cdomain.train import TrainConfig, run


def test_dct_training_uses_the_batch_path(tmp_path, monkeypatch):
    calls = []
    original = batch_path.BatchChannels.__call__

    def counted(self, batch):
        calls.append((self.device.type, len(batch), batch.luma.dtype))
        return original(self, batch)

    monkeypatch.setattr(batch_path.BatchChannels, "__call__", counted)
    config = TrainConfig(data="textures-tiny", input="dct", epochs=1, quiet=True, output=str(tmp_path / "run"),
                         fbs=4, stats_images=8, batch_size=8, device="cpu", mode="jpeg-aug", aug_quality=(20, 60),
                         requant="dct")
    summary = run(config)
    assert summary["final_val_acc"] is not None
    assert calls and {device for device, _, _ in calls} == {"cpu"}
    assert {str(dtype) for _, _, dtype in calls} == {"torch.int16"}
