"""Probes and retrieval on a ragged store: every valid clip of each video, never the padding; the model
embeds each video over interleaved sets of K clips in time order (model/long_sets.py)."""
import math

import numpy as np
import pytest
import torch

from scale_toolkit.demo.long_videos import LongVideoSpec, write_long_videos
from scale_toolkit.errors import ScaleError
from scale_toolkit.extract.feature_files import import_feature_files
from scale_toolkit.model import ScaleConfig, ScaleModel, load_model
from scale_toolkit.model.long_sets import interleaved_subsets
from scale_toolkit.probes import data as D
from scale_toolkit.probes.fit import predict_set_classifier
from scale_toolkit.probes.protocol import ProbeOptions, run_probes
from scale_toolkit.probes.set_inputs import RaggedSets
from scale_toolkit.probes.transformer import SetClassifier
from scale_toolkit.retrieval.descriptors import store_descriptors
from scale_toolkit.retrieval.evaluate import evaluate_retrieval
from scale_toolkit.store import FeatureStore
from scale_toolkit.train import TrainConfig, train
from tests.train.helpers import TINY_MODEL

# windows sized in bytes of data (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("budget_for_data_only")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A CSV-listed folder of 3..120-row videos plus a NaN file and a file of another D, imported and trained."""
    root = tmp_path_factory.mktemp("ragged")
    csv = write_long_videos(root / "feats", LongVideoSpec(groups=2, train_per_class=6, test_per_class=3, dim=16,
                                                          min_rows=3, max_rows=120))
    bad = np.ones((9, 16))
    bad[3, 3] = np.nan
    np.save(root / "feats" / "nan.npy", bad)
    np.savez(root / "feats" / "wide.npz", x=np.ones((9, 17)))
    with open(csv, "a") as f:
        f.write("nan.npy,g0_ab,train\nwide.npz,g0_ab,test\n")
    summary = import_feature_files(csv, root / "s.zarr")
    assert (summary.imported, summary.failed) == (36, 2)
    train(TrainConfig(store=str(root / "s.zarr"), split=1, out=str(root / "run"), epochs=2, batch_size=8,
                      warmup=1.0, model=ScaleConfig(**TINY_MODEL, set_size=4)))
    return root / "s.zarr", root / "run"


def _per_video(fs, rows):
    flat, counts = fs.read_clips(rows, ("features", "coords"))
    ends = np.cumsum(counts)
    return [(flat["features"][e - c:e].astype(np.float32), flat["coords"][e - c:e]) for c, e in zip(counts, ends)]


def _by_hand(model, feats, coords):
    """(SET token, mean refined clip) of one video computed the slow way: its clips in time order, one
    forward per interleaved subset of K (no padding anywhere), the SET tokens averaged, each clip's
    refined token averaged over the subsets holding it, then the mean over clips."""
    order = np.argsort(coords[:, 2], kind="stable")
    feats, coords = feats[order], coords[order]
    sets, refined, hits = [], np.zeros((len(feats), model.config.hidden)), np.zeros(len(feats))
    for subset in interleaved_subsets(len(feats), model.config.set_size):
        out = model.encode(torch.from_numpy(feats[subset])[None], torch.from_numpy(coords[subset])[None])
        sets.append(out["set_token"][0].numpy())
        refined[subset] += out["refined"][0].numpy()
        hits[subset] += 1
    assert hits.min() >= 1  # every clip is in some subset
    return np.mean(sets, 0), (refined / hits[:, None]).mean(0)


def test_clip_means_and_set_tokens_cover_exactly_each_videos_clips(imported):
    store, run = imported
    fs = FeatureStore.open(store)
    model, _ = load_model(run)
    rows = fs.split_indices(1, "test")
    view = D.load_mean_view(fs, torch.device("cpu"), wanted=rows, model=model, batch_videos=5)
    assert fs.clip_counts[rows].min() < fs.clip_counts[rows].max()  # padded pieces do hold padding
    for pos, (feats, coords) in zip(view.rows(rows).tolist(), _per_video(fs, rows)):
        np.testing.assert_allclose(view.features[pos, 0].numpy(), feats.mean(0), rtol=1e-5, atol=1e-5)
        set_token, refined = _by_hand(model, feats, coords)
        np.testing.assert_allclose(view.set_token[pos].numpy(), set_token, rtol=1e-4, atol=1e-4)
        # the view keeps refined clips in float16 before averaging them
        np.testing.assert_allclose(view.refined[pos, 0].numpy(), refined, rtol=2e-3, atol=2e-3)


def test_retrieval_descriptors_cover_exactly_each_videos_clips(imported):
    store, run = imported
    fs = FeatureStore.open(store)
    model, _ = load_model(run)
    rows = fs.split_indices(1, "train")
    mean = store_descriptors(fs, rows)
    sets = store_descriptors(fs, rows, kind="set", model=model)
    for i, (feats, coords) in enumerate(_per_video(fs, rows)):
        np.testing.assert_allclose(mean[i], feats.mean(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(sets[i], _by_hand(model, feats, coords)[0], rtol=1e-4, atol=1e-4)
    res = evaluate_retrieval(fs, 1, model=model)
    assert all(0 <= v <= 100 for v in res["recall"].values()) and all(math.isfinite(v) for v in res["scale_recall"].values())


def test_probes_run_on_every_per_video_row(imported):
    store, run = imported
    res = run_probes(store, rows=["knn", "scale_knn", "linear", "scale_linear"], model=run,
                     options=ProbeOptions(split="1", epochs=5))
    for row in ("knn", "scale_knn", "linear", "scale_linear"):
        assert 0 <= res["results"][row]["top1"] <= 100, row
    with pytest.raises(ScaleError, match="any length"):  # the median row needs every video's V clips
        run_probes(store, rows=["knn_median"], options=ProbeOptions(split="1", knn_k=[3]))


def _slow_probabilities(clf, feats, coords, set_size):
    """A set classifier's class probabilities for one video, the slow way: its clips in time order, one
    unpadded forward per interleaved K-subset, the per-clip softmax averaged within each, then over them."""
    order = np.argsort(coords[:, 2], kind="stable")
    feats, coords = torch.from_numpy(feats[order]), torch.from_numpy(coords[order])
    per_subset = [clf(feats[s][None], coords[s][None])[0].softmax(-1).mean(0) for s in interleaved_subsets(len(feats), set_size)]
    return torch.stack(per_subset).mean(0).numpy()


def test_set_classifiers_predict_over_interleaved_k_clip_subsets_of_each_video(imported):
    store, run = imported
    fs = FeatureStore.open(store)
    rows = fs.split_indices(1, "test")
    clips = D.load_flat_clips(fs, torch.device("cpu"), wanted=rows)
    view = D.load_mean_view(fs, torch.device("cpu"), wanted=rows)
    model, _ = load_model(run)
    clf = SetClassifier(model, n_classes=4).eval()
    set_size = 16  # K between the shortest and longest test video: one padded subset, and many full ones
    assert fs.clip_counts[rows].min() < set_size < fs.clip_counts[rows].max()
    sets = RaggedSets(clips, view.rows(rows), set_size=set_size)
    probs = predict_set_classifier(clf, sets, batch_videos=7)  # batches cut across videos' subsets
    with torch.no_grad():
        for got, (feats, coords) in zip(probs, _per_video(fs, rows)):
            np.testing.assert_allclose(got, _slow_probabilities(clf, feats, coords, set_size), rtol=1e-4, atol=1e-5)


def test_set_classifiers_train_on_k_clips_drawn_from_each_videos_own(imported):
    store, _ = imported
    fs = FeatureStore.open(store)
    rows = fs.split_indices(1, "train")
    clips = D.load_flat_clips(fs, torch.device("cpu"), wanted=rows)
    sets = RaggedSets(clips, torch.arange(len(rows)), set_size=4)
    x, pos = sets.batch(torch.arange(len(rows)), torch.Generator().manual_seed(0))
    assert x.shape == (len(rows), 4, fs.feature_dim) and pos.shape == (len(rows), 4, 6)
    for got, (feats, _) in zip(x.numpy(), _per_video(fs, rows)):
        own = {tuple(f) for f in feats.astype(np.float16).astype(np.float32)}
        drawn = [tuple(f) for f in got]
        assert set(drawn) <= own  # only the video's own clips
        assert len(set(drawn)) == min(4, len(own))  # distinct while it has K, else all of its clips


def test_transformer_and_scale_ft_run_on_a_store_of_videos_of_any_length(imported):
    store, run = imported
    res = run_probes(store, rows=["transformer", "scale_ft"], model=run, options=ProbeOptions(split="1", epochs=2))
    n_test = len(FeatureStore.open(store).split_indices(1, "test"))
    for row in ("transformer", "scale_ft"):
        assert 0 <= res["results"][row]["top1"] <= 100 and res["results"][row]["n_test"] == n_test, row
    with pytest.raises(ScaleError, match="memory budget"):  # every probed clip is held: checked before reading
        run_probes(store, rows=["transformer"], options=ProbeOptions(split="1", epochs=1, max_memory="2K"))
    with pytest.raises(ScaleError, match="--protocol official cannot run scale_ft"):  # it trains on V fixed clips
        run_probes(store, rows=["scale_ft"], model=run, options=ProbeOptions(split="1", epochs=1, protocol="official"))


def test_masked_forward_ignores_whatever_the_padding_holds():
    torch.manual_seed(0)
    model = ScaleModel(ScaleConfig(**TINY_MODEL, input_dim=8)).eval()
    f, c = torch.randn(2, 10, 8), torch.rand(2, 10, 6)
    valid = torch.arange(10)[None] < torch.tensor([[4], [10]])
    junk = f.clone()
    junk[0, 4:] = 1e3
    a = model.encode(f, c, valid=valid)["set_token"]
    b = model.encode(junk, c, valid=valid)["set_token"]
    torch.testing.assert_close(a, b)
