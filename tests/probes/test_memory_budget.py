"""`scale probe` sizes what the trained probes hold against a memory budget before reading the clips."""
import numpy as np
import pytest

from scale_toolkit.errors import ScaleError
from scale_toolkit.probes import run_probes
from scale_toolkit.probes.options import ProbeOptions
from scale_toolkit.store import FeatureStore


@pytest.fixture
def store(tmp_path):
    n, clips, dim = 40, 4, 16
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    splits = np.where(np.arange(n) % 4 == 0, 2, 1)[None].repeat(3, 0).astype(np.int8)
    fs = FeatureStore.create(tmp_path / "eval15.zarr", video_ids=[f"v{i}" for i in range(n)], labels=labels,
                             splits=splits, class_names=["a", "b"], n_clips=clips, feature_dim=dim,
                             attrs={"view": {"name": "eval15", "clips": clips}})
    feats = rng.standard_normal((n, clips, dim)).astype(np.float16) + 3 * labels[:, None, None].astype(np.float16)
    fs.write_rows(np.arange(n), features=feats, coords=np.zeros((n, clips, 6), np.float32))
    return tmp_path / "eval15.zarr"


def test_trained_probes_over_the_budget_stop_before_loading_with_one_line(store):
    need = 40 * 4 * (2 * 16 + 25)  # videos x clips x (float16 features, float32 coords, flip)
    with pytest.raises(ScaleError, match=r"over the memory budget .*\(--max-memory \d+\).*k-NN rows stream"):
        run_probes(store, rows=["linear"], options=ProbeOptions(max_memory=str(need - 1), epochs=1))
    doc = run_probes(store, rows=["linear"], options=ProbeOptions(max_memory=str(need), epochs=20))
    assert doc["results"]["linear"]["top1"] > 50


def test_k_nn_alone_streams_and_is_not_held_to_the_clip_budget(store):
    doc = run_probes(store, rows=["knn"], options=ProbeOptions(max_memory="1", knn_k=[3]))
    assert doc["results"]["knn"]["top1"] > 50


def test_a_bad_budget_is_one_line_naming_the_flag():
    with pytest.raises(ScaleError, match="--max-memory must be a size"):
        ProbeOptions(max_memory="lots").validate()
