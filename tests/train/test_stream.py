"""A train split larger than --max-memory streams from the store a window at a time (issue #25)."""
import json

import numpy as np
import pytest
import torch

from scale_toolkit.errors import ScaleError
from scale_toolkit.memory import parse_size
from scale_toolkit.train import train
from scale_toolkit.train.stream import StreamedSplit
from tests.train.helpers import make_train_store
from tests.train.test_trainer import cfg as trainer_cfg

# windows sized in bytes of data (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("budget_for_data_only")

# 16 clips x (24 dims x 2 bytes + 6 x 4) = 1152 bytes a video: 20 kB holds about 17 videos, far fewer than 96
SMALL_BUDGET = "20000"


def cfg(tmp_path, **kw):
    return trainer_cfg(tmp_path, **{"batch_size": 8, "save_every": 0, **kw})


def test_a_split_over_the_budget_streams_and_trains(tmp_path):
    make_train_store(tmp_path / "train.zarr", n=128)
    streamed = train(cfg(tmp_path, max_memory=SMALL_BUDGET))
    resident = train(cfg(tmp_path, out=str(tmp_path / "resident")))
    conf = json.loads((tmp_path / "run" / "config.json").read_text())
    info = conf["store"]["streamed"]
    assert info["budget_bytes"] == 20000 and info["split_bytes"] > 20000
    assert info["window_videos"] == 8  # one batch: the budget holds less than two
    assert "streamed" not in json.loads((tmp_path / "resident" / "config.json").read_text())["store"]
    # the same plan: every video once an epoch, the same steps, held-out metrics
    assert streamed["steps"] == resident["steps"] == 3 * (86 // 8)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) and "val_set_acc" in r for r in rows)


def test_streamed_training_learns_like_resident_training(tmp_path):
    """The order task of the helpers: a streamed run (windows of 24 of the 86 videos) lowers the
    loss by at least half as much as the resident run."""
    make_train_store(tmp_path / "train.zarr", n=128)
    train(cfg(tmp_path, epochs=10, max_memory="60000"))
    train(cfg(tmp_path, out=str(tmp_path / "resident"), epochs=10))

    def drop(run):
        losses = [json.loads(x)["loss"] for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return losses[0] - losses[-1]

    assert drop("resident") > 0.2 and drop("run") > 0.5 * drop("resident")


def test_each_epoch_visits_every_training_video_once(tmp_path):
    fs = make_train_store(tmp_path / "train.zarr", n=200)
    rows = fs.split_indices(1, "train")
    stream = StreamedSplit(str(tmp_path / "train.zarr"), rows, fs.n_clips, fs.feature_dim, "eq5")
    stream.fit_window(60 * 16 * 72, batch=8)  # budget of 60 videos: windows of 16 (a third, rounded to the batch)
    assert stream.window == 16
    seen = []
    for window_rows, order in stream.epoch_windows(seed=0, epoch=0):
        assert len(window_rows) <= 16 and np.all(np.diff(window_rows) > 0)
        assert sorted(order) == list(range(len(window_rows)))
        seen.extend(window_rows[order])
    assert sorted(seen) == sorted(rows)
    again = [r for w, o in stream.epoch_windows(seed=0, epoch=0) for r in w[o]]
    other = [r for w, o in stream.epoch_windows(seed=0, epoch=1) for r in w[o]]
    assert again == seen and other != seen  # the order comes from seed and epoch alone (resume repeats it)
    feats, pos = stream.read(rows[:5])
    np.testing.assert_array_equal(feats, fs.read(rows[:5])["features"])


def test_resume_of_a_streamed_run_is_bit_identical(tmp_path):
    make_train_store(tmp_path / "train.zarr", n=96)
    full = cfg(tmp_path, out=str(tmp_path / "full"), epochs=3, max_memory=SMALL_BUDGET)
    train(full)

    class Kill(Exception):
        pass

    def killer(e):
        if e["event"] == "step" and e["step"] == 12:  # in epoch 2 (7 steps an epoch)
            raise Kill

    # a checkpoint after every epoch (not every 60 s): the kill in epoch 2 resumes from epoch 1's
    cut = cfg(tmp_path, out=str(tmp_path / "cut"), epochs=3, max_memory=SMALL_BUDGET, checkpoint_every=0)
    with pytest.raises(Kill):
        train(cut, progress=killer)
    cut.resume = True
    train(cut)
    a = torch.load(tmp_path / "full" / "checkpoint_last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "cut" / "checkpoint_last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("text", ["lots", "-1G", "0", "1e9"])
def test_a_bad_budget_is_one_clear_error(tmp_path, text):
    with pytest.raises(ScaleError, match="--max-memory"):
        cfg(tmp_path, max_memory=text)
    with pytest.raises(ScaleError):
        parse_size(text)


def test_a_rank_reads_and_holds_only_its_rows_of_each_window(tmp_path):
    """Under DDP a rank computes rows lo:hi of every batch: it reads only those rows of a window,
    into a buffer of its share, and the two ranks' shares are the single process's batches."""
    from scale_toolkit.train.trainer import _Window

    fs = make_train_store(tmp_path / "train.zarr", n=200)
    stream = StreamedSplit(str(tmp_path / "train.zarr"), fs.split_indices(1, "train"), fs.n_clips, fs.feature_dim, "eq5")
    stream.fit_window(40 * 16 * 72, batch=8)  # windows of 16 videos: two batches of 8
    full = fs.read(np.arange(fs.n_videos), names=("features",))["features"]
    read_rows: dict[tuple[int, int], list[int]] = {}
    batches = {}
    for lo, hi in ((0, 8), (0, 4), (4, 8)):
        window = _Window(stream, torch.zeros((16 // 8 * (hi - lo), fs.n_clips, fs.feature_dim), dtype=torch.float16),
                         torch.zeros((16 // 8 * (hi - lo), fs.n_clips, 6)))
        reads, real_read = read_rows.setdefault((lo, hi), []), stream.read
        stream.read = lambda rows, reads=reads, real_read=real_read: (reads.extend(rows.tolist()), real_read(rows))[1]
        # the features each batch's rows lo:hi see, as store rows (matched back through the features)
        batches[(lo, hi)] = [window.features[videos[lo:hi]].clone() for videos in window.batches(0, 0, 8, lo, hi)]
        del stream.read
    assert sorted(read_rows[(0, 4)] + read_rows[(4, 8)]) == sorted(read_rows[(0, 8)])  # the shares split the reads
    assert not set(read_rows[(0, 4)]) & set(read_rows[(4, 8)])
    for whole, first, second in zip(batches[(0, 8)], batches[(0, 4)], batches[(4, 8)]):
        assert torch.equal(whole, torch.cat([first, second]))
    expected = [full[rows[order[b * 8:(b + 1) * 8]]] for rows, order in stream.epoch_windows(0, 0)
                for b in range(len(rows) // 8)]
    assert len(expected) == len(batches[(0, 8)])
    for want, got in zip(expected, batches[(0, 8)]):
        assert np.array_equal(want, got.numpy())
