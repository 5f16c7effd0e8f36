"""`scale probe` sizes what the trained probes hold against a memory budget before reading the clips."""
import numpy as np
import pytest

from scale_toolkit.errors import ScaleError
from scale_toolkit.probes import run_probes
from scale_toolkit.probes.options import ProbeOptions
from scale_toolkit.store import FeatureStore

# windows sized in bytes of data (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("budget_for_data_only")


def _make_store(path, n=40, clips=4, dim=16, rows_per_chunk=16):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    splits = np.where(np.arange(n) % 4 == 0, 2, 1)[None].repeat(3, 0).astype(np.int8)
    fs = FeatureStore.create(path, video_ids=[f"v{i}" for i in range(n)], labels=labels, splits=splits,
                             class_names=["a", "b"], n_clips=clips, feature_dim=dim, rows_per_chunk=rows_per_chunk,
                             attrs={"view": {"name": "eval15", "clips": clips}})
    feats = rng.standard_normal((n, clips, dim)).astype(np.float16) + 3 * labels[:, None, None].astype(np.float16)
    fs.write_rows(np.arange(n), features=feats, coords=np.zeros((n, clips, 6), np.float32))
    return path


@pytest.fixture
def store(tmp_path):
    return _make_store(tmp_path / "eval15.zarr", rows_per_chunk=4)


NEED = 40 * 4 * (2 * 16 + 25)  # videos x clips x (float16 features, float32 coords, flip): all of them held


def test_clip_heads_over_the_budget_read_the_store_a_window_at_a_time(store, monkeypatch):
    held = run_probes(store, rows=["linear", "mlp"], options=ProbeOptions(max_memory=str(NEED), epochs=20))
    asked = []
    read = FeatureStore.read

    def counted(self, idx=None, names=("features", "coords"), **kw):
        if "features" in names:
            asked.append(self.n_videos if idx is None else len(idx))
        return read(self, idx, names, **kw)

    monkeypatch.setattr(FeatureStore, "read", counted)
    budget = 2 * 7 * (4 * 16 * 10)  # a window of 7 videos: float16 clips, their float32 form and a batch's
    streamed = run_probes(store, rows=["linear", "mlp"], options=ProbeOptions(max_memory=str(budget), epochs=20))
    assert any("over the memory budget" in note and "7 videos at a time" in note for note in streamed["notes"])
    assert asked and max(asked) <= 7  # never more than a window of clips read at once
    for row in ("linear", "mlp"):
        assert held["results"][row]["top1"] > 90 and streamed["results"][row]["top1"] > 90


def test_rows_that_cannot_stream_stop_before_loading_with_one_line_naming_them(store):
    with pytest.raises(ScaleError, match=r"over the memory budget .*\(--max-memory \d+\); transformer cannot stream"):
        run_probes(store, rows=["linear", "transformer"], options=ProbeOptions(max_memory=str(NEED - 1), epochs=1))


MEANS = 40 * 2 * 4 * 16  # videos x (a float32 mean, and the search index's copy of it)


def test_k_nn_alone_streams_and_holds_a_vector_per_video(store):
    assert MEANS < NEED
    doc = run_probes(store, rows=["knn"], options=ProbeOptions(max_memory=str(MEANS), knn_k=[3]))  # under the clips'
    assert doc["results"]["knn"]["top1"] > 50
    with pytest.raises(ScaleError, match=r"would hold .* of per-video vectors \(40 videos\), over the memory budget"):
        run_probes(store, rows=["knn"], options=ProbeOptions(max_memory=str(MEANS - 1), knn_k=[3]))


def test_a_bad_budget_is_one_line_naming_the_flag():
    with pytest.raises(ScaleError, match="--max-memory must be a size"):
        ProbeOptions(max_memory="lots").validate()
