"""Checkpoints by time (issue #30): checkpoint_last.pt at most every --checkpoint-every seconds and at
the end, the bytes written reported, and a demo-size run writing well under 1 GB."""
from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from scale_toolkit.demo.run import DEMO_MCM_WEIGHT, DemoConfig
from scale_toolkit.model import ScaleConfig
from scale_toolkit.model.scale import ScaleModel
from scale_toolkit.train import TrainConfig, train
from scale_toolkit.train.run_dir import Checkpointer
from scale_toolkit.train.trainer import param_groups
from tests.train.helpers import TINY_MODEL, make_train_store


def _config(tmp_path: Path, **kw) -> TrainConfig:
    base = dict(store=str(tmp_path / "train.zarr"), split=1, out=str(tmp_path / "run"), epochs=3, batch_size=12,
                warmup=1.0, save_every=0, model=ScaleConfig(**TINY_MODEL))
    return TrainConfig(**{**base, **kw})


def test_a_short_run_writes_its_checkpoint_once_at_the_end_and_reports_the_bytes(tmp_path):
    make_train_store(tmp_path / "train.zarr")
    summary = train(_config(tmp_path))  # default cadence: 60 s, far longer than these 3 epochs
    run = tmp_path / "run"
    assert summary["checkpoints_written"] == 1
    assert torch.load(run / "checkpoint_last.pt", weights_only=True)["epoch"] == 3
    expected = (run / "checkpoint_last.pt").stat().st_size + (run / "model.pt").stat().st_size
    assert summary["bytes_written"] == expected
    assert json.loads((run / "summary.json").read_text())["bytes_written"] == expected


def test_checkpoint_every_zero_writes_after_every_epoch_and_snapshots_add_their_bytes(tmp_path):
    make_train_store(tmp_path / "train.zarr")
    summary = train(_config(tmp_path, epochs=4, checkpoint_every=0, save_every=2))
    run = tmp_path / "run"
    assert summary["checkpoints_written"] == 4 + 2  # checkpoint_last after each epoch, snapshots of epochs 2 and 4
    sizes = [(run / name).stat().st_size for name in ("checkpoint_last.pt", "checkpoint_epoch0002.pt", "checkpoint_epoch0004.pt")]
    per_write = sizes[0]
    assert all(abs(s - per_write) < 1024 for s in sizes)  # the same state each time (the epoch number aside)
    assert abs(summary["bytes_written"] - (6 * per_write + (run / "model.pt").stat().st_size)) < 6 * 1024


class _CountingSink(io.RawIOBase):
    def __init__(self) -> None:
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.n += len(data)
        return len(data)


def _serialised_bytes(checkpoint: dict, path: Path) -> int:
    """The checkpoint as torch.save writes it, counted instead of stored (the suite writes no GBs)."""
    sink = _CountingSink()
    torch.save(checkpoint, sink)
    return sink.n


def test_a_450_epoch_demo_size_run_writes_under_1_gb():
    """The demo's model, optimiser state and settings (save_every=0), 450 epochs of 1 s each (7.5 min of
    training: the README's demo trains in 3 to 4.6 min), the default cadence of 60 s. Written every
    epoch, the same run wrote 450 x 93 MB = 42 GB (issue #30)."""
    demo, epochs = DemoConfig(), 450
    model = ScaleModel(ScaleConfig(input_dim=64, mcm_weight=DEMO_MCM_WEIGHT))
    optimizer = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3)
    for p in model.parameters():  # one step, so the optimiser holds its full state (two moments per weight)
        p.grad = torch.zeros_like(p)
    optimizer.step()
    train_config = TrainConfig(epochs=epochs, batch_size=demo.batch_size, save_every=0)
    now = [0.0]
    writer = Checkpointer(Path("run"), save_every=train_config.save_every, every_s=train_config.checkpoint_every,
                          clock=lambda: now[0], write=_serialised_bytes)
    payload = {"model_config": model.config.to_dict(), "train_config": train_config.to_dict(),
               "state_dict": model.state_dict(), "optimizer": optimizer.state_dict()}
    for epoch in range(1, epochs + 1):
        now[0] += 1.0
        writer.save(epoch, epoch == epochs, payload)
    one = _serialised_bytes({"format": "scale-checkpoint", "version": 1, "epoch": 1, **payload}, Path("x"))
    assert one > 80e6, "not the demo's size: the bound below would say nothing"
    assert writer.writes == epochs // 60 + 1  # after 60, 120, ..., 420 s and at the end
    assert writer.bytes_written < 1e9, writer.bytes_written


def test_a_negative_cadence_is_refused_in_one_line(tmp_path, run_cli):
    code, _, err = run_cli("train", "--store", tmp_path / "s.zarr", "--out", tmp_path / "run", "--checkpoint-every", "-5")
    assert code == 2
    assert err.strip().splitlines() == ["error: --checkpoint-every must be 0 (after every epoch) or seconds, got -5.0"]


def test_last_every_adds_epoch_checkpoints_to_the_time_ones():
    """``last_every`` (library callers, e.g. the demo): checkpoint_last.pt also after every N-th epoch."""
    now = [0.0]
    writer = Checkpointer(Path("run"), save_every=0, every_s=60, every_epochs=4, clock=lambda: now[0], write=lambda c, p: 1)
    due = []
    for epoch in range(1, 11):
        now[0] += 25.0
        if writer.save(epoch, epoch == 10, {}):
            due.append(epoch)
    assert due == [3, 4, 7, 8, 10]  # 75 s, epoch 4, 75 s after epoch 4 (175 s), epoch 8, the end
