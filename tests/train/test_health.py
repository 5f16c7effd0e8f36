"""Held-out SSL metrics, the stall warning, --steps, and the train-split feature standardisation."""
import json

import numpy as np
import torch

from scale_toolkit.model import ScaleConfig, load_model
from scale_toolkit.model.layers import feature_stats
from scale_toolkit.train import TrainConfig, train
from scale_toolkit.train.health import PlateauMonitor, holdout_split
from tests.train.helpers import TINY_MODEL, order_dataset


def test_holdout_is_disjoint_seeded_and_bounded():
    tr, va = holdout_split(48, 0.1, seed=3)
    assert len(va) == 5 and len(tr) == 43 and not set(tr) & set(va)
    assert np.array_equal(va, holdout_split(48, 0.1, seed=3)[1])
    assert not np.array_equal(va, holdout_split(48, 0.1, seed=4)[1])
    assert len(holdout_split(20, 0.1, 0)[1]) == 4  # at least MIN_VAL_VIDEOS
    assert len(holdout_split(20, 0.0, 0)[1]) == 0 and len(holdout_split(5, 0.5, 0)[1]) == 0  # off / too few left


def test_plateau_warns_once_for_flat_curves_and_not_for_rising_ones():
    flat, rising = PlateauMonitor(100), PlateauMonitor(100)
    notes = [flat.update(e, 0.02, 0.15) for e in range(1, 51)]
    assert sum(n is not None for n in notes) == 1 and "stopped improving" in next(n for n in notes if n)
    assert notes.index(next(n for n in notes if n)) == 39  # after two windows of 20 epochs
    assert all(rising.update(e, 0.01 * e, 0.02 * e) is None for e in range(1, 51))
    coarse = PlateauMonitor(100, n_videos=5)  # 5 held-out videos: too coarse to call a plateau
    assert all(coarse.update(e, 0.02, 0.15) is None for e in range(1, 51))
    late = PlateauMonitor(100)  # a plateau in the second half is the normal end of training
    assert all(late.update(e, min(0.01 * e, 0.45), min(0.02 * e, 0.9)) is None for e in range(1, 101))


def test_held_out_videos_are_not_trained_on_and_stats_come_from_training_videos(tmp_path):
    f, c, _ = order_dataset(40, d=24)
    f = f.copy()
    train_rows, val_rows = holdout_split(40, 0.1, seed=0)
    f[val_rows] = 1000  # a held-out video in the statistics or the batches would show
    events = []
    s = train(TrainConfig(out=str(tmp_path / "run"), epochs=2, batch_size=12, precision="fp32", model=ScaleConfig(**TINY_MODEL)),
              progress=events.append, data=(f, c))
    model, meta = load_model(tmp_path / "run")
    mean, std = feature_stats(torch.from_numpy(f[train_rows]))
    assert torch.allclose(model.in_norm.mean, mean) and torch.allclose(model.in_norm.std, std)
    assert meta["meta"]["effective"]["ssl_val_videos"] == 4
    assert np.isfinite(s["final"]["loss"]) and s["final"]["loss"] < 100  # a 1000-valued video in a batch would blow it up
    assert np.isfinite(s["final"]["val_mcm_loss"])


def test_steps_raise_the_epochs_of_a_small_training_set(tmp_path):
    f, c, _ = order_dataset(40, d=24)
    s = train(TrainConfig(out=str(tmp_path / "run"), epochs=2, steps=10, batch_size=12, precision="fp32", ssl_val=0,
                          model=ScaleConfig(**TINY_MODEL)), data=(f, c))
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert s["steps"] == 12 and s["epochs"] == 4 and len(rows) == 4  # 3 steps per epoch, ceil(10 / 3) epochs


def test_standardised_training_ignores_per_dimension_scale_and_offset(tmp_path):
    f, c, _ = order_dataset(40, d=24)
    scale = np.linspace(0.05, 3, 24, dtype=np.float32)
    shifted = (f.astype(np.float32) * scale + 7).astype(np.float16)
    runs = []
    for name, feats in (("a", f), ("b", shifted)):
        train(TrainConfig(out=str(tmp_path / name), epochs=2, batch_size=12, precision="fp32", ssl_val=0,
                          model=ScaleConfig(**TINY_MODEL)), data=(feats, c))
        runs.append([json.loads(x)["loss"] for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()])
    assert np.allclose(runs[0], runs[1], rtol=2e-3), runs
    ln = ScaleConfig(**TINY_MODEL, in_norm="layernorm", target_norm="layernorm")
    for name, feats in (("c", f), ("d", shifted)):
        train(TrainConfig(out=str(tmp_path / name), epochs=2, batch_size=12, precision="fp32", ssl_val=0, model=ln),
              data=(feats, c))
    a, b = ([json.loads(x)["loss"] for x in (tmp_path / n / "metrics.jsonl").read_text().splitlines()] for n in "cd")
    assert not np.allclose(a, b, rtol=2e-3)  # a per-clip LayerNorm does not remove it


def test_a_warm_up_longer_than_the_run_is_warned_about(tmp_path):
    """--epochs smaller than --warmup: the learning rate never reaches its peak; the run says so."""
    f, c, _ = order_dataset(24, d=24)
    events = []
    summary = train(TrainConfig(out=str(tmp_path / "short"), epochs=3, warmup=10, batch_size=12, precision="fp32",
                                ssl_val=0, save_every=0, model=ScaleConfig(**TINY_MODEL)), progress=events.append, data=(f, c))
    warned = [e["message"] for e in events if e["event"] == "warning"]
    assert summary["warnings"] == warned and len(warned) == 2
    assert "never reaches --lr" in warned[0] and "only 6 optimiser steps" in warned[1]  # 3 epochs of 2 steps
    long = train(TrainConfig(out=str(tmp_path / "long"), epochs=3, warmup=1, batch_size=12, precision="fp32",
                             ssl_val=0, save_every=0, model=ScaleConfig(**TINY_MODEL)), data=(f, c))
    assert not any("never reaches" in w for w in long["warnings"])
    enough = train(TrainConfig(out=str(tmp_path / "enough"), epochs=1, steps=1000, warmup=1, batch_size=12, precision="fp32",
                               ssl_val=0, save_every=0, model=ScaleConfig(**TINY_MODEL)), data=(f, c))
    assert enough["steps"] == 1000 and enough["warnings"] == []


def test_held_out_scores_at_most_about_100_times_and_plateau_counts_epochs_not_scores():
    from scale_toolkit.train.health import held_out_due
    assert all(held_out_due(e, 40) for e in range(1, 41))  # short runs: every epoch
    due = [e for e in range(1, 1001) if held_out_due(e, 1000)]
    assert due[:3] == [1, 10, 20] and due[-1] == 1000 and len(due) == 101
    sparse = PlateauMonitor(1000)  # window 200 epochs, scores every 10th
    notes = {e: sparse.update(e, 0.02, 0.15) for e in due}
    assert [e for e, n in notes.items() if n] == [400]  # two windows of epochs, not of scores
