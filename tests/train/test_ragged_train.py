"""Training on a ragged store (videos of any length): set sampling and the trainer end to end."""
import json
import math

import numpy as np
import pytest
import torch

from scale_toolkit.demo.long_videos import LongVideoSpec, write_long_videos
from scale_toolkit.errors import ScaleError
from scale_toolkit.extract.feature_files import import_feature_files
from scale_toolkit.model import ScaleConfig
from scale_toolkit.train import TrainConfig, train
from scale_toolkit.train.ragged import RaggedSampler, RaggedSplit, sample_ragged_sets
from tests.train.helpers import TINY_MODEL

# windows sized in bytes of data (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("budget_for_data_only")

K = 4


def test_long_videos_give_two_disjoint_sets_of_distinct_clips():
    g = torch.Generator().manual_seed(0)
    counts = torch.tensor([8, 50, 2000])
    seen = set()
    for _ in range(200):
        sets = sample_ragged_sets(counts, K, g)
        for v, c in enumerate(counts.tolist()):
            flat = sets[v].flatten().tolist()
            assert len(set(flat)) == 2 * K and all(0 <= p < c for p in flat)
        seen.update(sets[1].flatten().tolist())
    assert seen == set(range(50))  # every clip of a video gets drawn: the sets come from all its clips


def test_short_videos_share_as_few_clips_as_they_can():
    g = torch.Generator().manual_seed(1)
    for n in (1, 2, 3, 5, 7):
        sets = sample_ragged_sets(torch.tensor([n]), K, g)[0]
        a, b = sets[0].tolist(), sets[1].tolist()
        assert all(0 <= p < n for p in a + b)
        assert len(set(a + b)) == n  # every clip of the video is used
        if n >= K:  # each set has K distinct clips; the two share exactly 2K - n
            assert len(set(a)) == K and len(set(b)) == K and len(set(a) & set(b)) == 2 * K - n
        else:  # fewer than K: every clip in each set, repeated
            assert set(a) == set(range(n))


def test_sampler_rows_stay_inside_each_video():
    split = RaggedSplit(np.zeros((30, 2), np.float16), np.zeros((30, 6), np.float32),
                        np.array([0, 3, 10]), np.array([3, 7, 20]))
    sampler = RaggedSampler(split.offsets, split.counts, torch.device("cpu"))
    cfg = ScaleConfig(**TINY_MODEL, set_size=K)
    videos = torch.tensor([2, 0, 1, 2])
    zeros, rows, mask = sampler.flat_views(cfg, videos, torch.Generator().manual_seed(0))
    assert zeros.tolist() == [0, 0, 0, 0] and mask.shape == (4, 2, K)
    for b, v in enumerate(videos.tolist()):
        lo, hi = split.offsets[v], split.offsets[v] + split.counts[v]
        assert ((rows[b] >= lo) & (rows[b] < hi)).all()


@pytest.fixture(scope="module")
def long_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    csv = write_long_videos(root / "feats", LongVideoSpec(groups=2, train_per_class=8, test_per_class=3, dim=16,
                                                          min_rows=3, max_rows=60))
    import_feature_files(csv, root / "s.zarr")
    return root / "s.zarr"


def test_trainer_runs_on_a_ragged_store(long_store, tmp_path):
    cfg = TrainConfig(store=str(long_store), split=1, out=str(tmp_path / "run"), epochs=3, batch_size=8, warmup=1.0,
                      model=ScaleConfig(**TINY_MODEL, set_size=K))
    s = train(cfg)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and all(math.isfinite(r["loss"]) for r in rows)
    conf = json.loads((tmp_path / "run" / "config.json").read_text())
    assert conf["store"]["layout"] == "ragged" and conf["store"]["clips_per_video"]["min"] >= 3
    assert conf["effective"]["ssl_val_videos"] >= 1 and math.isfinite(rows[-1]["val_set_loss"])
    again = train(TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "run2")}))
    assert again["final"]["loss"] == s["final"]["loss"]  # same seed, same draws


def test_ragged_store_refuses_the_official_positions(long_store, tmp_path):
    cfg = TrainConfig(store=str(long_store), split=1, out=str(tmp_path / "run"), epochs=1, batch_size=8,
                      model=ScaleConfig(**TINY_MODEL, set_size=K, pos_input="official7"))
    with pytest.raises(ScaleError, match="eq5"):
        train(cfg)


def test_a_ragged_split_over_the_memory_budget_streams_a_window_of_videos_at_a_time(long_store, tmp_path, monkeypatch):
    from scale_toolkit.store.ragged import RaggedStore

    reads = []
    read_clips = RaggedStore.read_clips

    def counted(self, rows, *args, **kwargs):
        reads.append(np.asarray(rows).tolist())
        return read_clips(self, rows, *args, **kwargs)

    monkeypatch.setattr(RaggedStore, "read_clips", counted)
    cfg = TrainConfig(store=str(long_store), split=1, out=str(tmp_path / "run"), epochs=2, batch_size=4, warmup=1.0,
                      model=ScaleConfig(**TINY_MODEL, set_size=K), max_memory="40K")
    s = train(cfg)
    conf = json.loads((tmp_path / "run" / "config.json").read_text())
    window, n_train = conf["store"]["streamed"]["window_videos"], conf["store"]["n_train_videos"]
    held = conf["effective"]["ssl_val_videos"]
    assert conf["store"]["layout"] == "ragged" and 4 <= window < n_train - held and window % 4 == 0
    assert all(len(r) <= window for r in reads[1:])  # after the held-out videos: never more than a window at once
    train_reads = [r for r in reads[1:]]
    per_epoch = (n_train - held) // window + bool((n_train - held) % window)
    assert len(train_reads) == per_epoch * 2 + per_epoch  # two epochs, plus the statistics pass when standardising
    for epoch in range(2):  # every train video once an epoch
        seen = sum(train_reads[per_epoch * (1 + epoch):per_epoch * (2 + epoch)], [])
        assert len(seen) == len(set(seen)) == n_train - held
    assert math.isfinite(s["final"]["loss"]) and s["steps"] == 2 * ((n_train - held) // 4)
    again = train(TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "run2")}))
    assert again["final"]["loss"] == s["final"]["loss"]  # the windows' order comes from the seed and the epoch
