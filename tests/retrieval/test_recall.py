"""R@k of the protocol against a brute-force numpy reference; centring on/off; no dropped videos."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from scale_toolkit.errors import ScaleError
from scale_toolkit.model import load_model
from scale_toolkit.retrieval.evaluate import evaluate_retrieval, recall_at_k
from scale_toolkit.retrieval.index import IndexParams
from scale_toolkit.store import FeatureStore

from .helpers import make_model_dir, make_store, reference_recall

KS = (1, 5, 10, 20, 50)


def _split(arrays, split):
    test = np.flatnonzero(arrays["splits"][split - 1] == 2)
    train = np.flatnonzero(arrays["splits"][split - 1] == 1)
    return test, train


@pytest.mark.parametrize("seed,split,center", [(0, 1, False), (1, 2, True), (2, 3, False), (3, 1, True)])
def test_recall_matches_bruteforce_reference(tmp_path, seed, split, center):
    fs, a = make_store(tmp_path / "s.zarr", n=90, d=24, classes=7, seed=seed, class_spread=0.35)
    res = evaluate_retrieval(fs, split, ks=KS, center=center)
    test, train = _split(a, split)
    feats = a["features"].astype(np.float64).mean(1)
    ref = reference_recall(feats[test], a["labels"][test], feats[train], a["labels"][train], KS, center)
    assert res["recall"].keys() == ref.keys()
    for k in ref:
        assert res["recall"][k] == pytest.approx(ref[k], abs=1e-9)
    # not a degenerate check: the numbers move with k and are not all 100
    assert res["recall"]["1"] < 100.0 and res["recall"]["1"] <= res["recall"]["5"] <= res["recall"]["50"]
    assert res["n_queries"] == len(test) and res["n_gallery"] == len(train)  # no video dropped
    assert res["protocol"]["center"] is center


def test_k_larger_than_gallery_counts_whole_gallery():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((4, 8)).astype(np.float32)
    q = rng.standard_normal((3, 8)).astype(np.float32)
    res = recall_at_k(q, np.array([0, 1, 9]), g, np.array([0, 1, 2, 3]), ks=(2, 4, 50))
    assert res["50"] == res["4"] == pytest.approx(200 / 3)  # class 9 is absent from the gallery: a miss


def test_centring_off_matches_uncentred_reference_and_on_matches_per_split_centred(tmp_path):
    """Shifting every test video by one vector and every train video by another: centring on
    removes both shifts exactly (R@k unchanged and equal to the centred reference); centring off
    sees them (R@k equals the uncentred reference of the shifted data, which differs)."""
    fs, a = make_store(tmp_path / "s.zarr", n=90, d=24, classes=7, seed=5, class_spread=0.35)
    test, train = _split(a, 1)
    rng = np.random.default_rng(9)
    shifted = a["features"].astype(np.float32).copy()
    shifted[test] += (3 * rng.standard_normal(24)).astype(np.float32)
    shifted[train] += (3 * rng.standard_normal(24)).astype(np.float32)
    fs2, _ = make_store(tmp_path / "shifted.zarr", n=90, d=24, classes=7, seed=5, class_spread=0.35)
    fs2.write_rows(np.arange(90), features=shifted.astype(np.float16), coords=a["coords"])
    stored = fs2.read(None, ("features",))["features"].astype(np.float64).mean(1)

    on, on_shifted = evaluate_retrieval(fs, 1, ks=KS, center=True), evaluate_retrieval(fs2, 1, ks=KS, center=True)
    off, off_shifted = evaluate_retrieval(fs, 1, ks=KS, center=False), evaluate_retrieval(fs2, 1, ks=KS, center=False)
    ref_on = reference_recall(stored[test], a["labels"][test], stored[train], a["labels"][train], KS, True)
    ref_off = reference_recall(stored[test], a["labels"][test], stored[train], a["labels"][train], KS, False)
    for k in on["recall"]:
        assert on_shifted["recall"][k] == pytest.approx(ref_on[k], abs=1e-9)
        assert on_shifted["recall"][k] == pytest.approx(on["recall"][k], abs=1e-9)  # shift removed (float16 aside)
        assert off_shifted["recall"][k] == pytest.approx(ref_off[k], abs=1e-9)
    assert off_shifted["recall"] != off["recall"]  # without centring the shift matters
    assert "CoCLR" in on["protocol"]["centring"] and "VCOP" in off["protocol"]["centring"]


def test_scale_recall_uses_set_token_and_model_outputs(tmp_path):
    fs, a = make_store(tmp_path / "s.zarr", n=45, d=16, classes=5, seed=3, class_spread=0.5)
    run = make_model_dir(tmp_path / "run", input_dim=16)
    model, _ = load_model(run)
    res = evaluate_retrieval(fs, 1, model=model, model_info={"path": str(run), "fingerprint": "x"}, ks=KS)
    res_cat = evaluate_retrieval(fs, 1, model=model, scale_descriptor="set+mean", ks=KS, center=True)
    test, train = _split(a, 1)
    with torch.no_grad():
        enc = model.encode(torch.from_numpy(a["features"].astype(np.float32)), torch.from_numpy(a["coords"]))
    set_tok = enc["set_token"].numpy()
    refined = enc["refined"].numpy().mean(1)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    cat = np.concatenate([unit(set_tok), unit(refined)], axis=1)
    ref = reference_recall(set_tok[test], a["labels"][test], set_tok[train], a["labels"][train], KS, False)
    ref_cat = reference_recall(cat[test], a["labels"][test], cat[train], a["labels"][train], KS, True)
    feats = a["features"].astype(np.float64).mean(1)
    ref_base = reference_recall(feats[test], a["labels"][test], feats[train], a["labels"][train], KS, False)
    assert res["scale_recall"] == pytest.approx(ref)
    assert res_cat["scale_recall"] == pytest.approx(ref_cat)
    assert res["recall"] == pytest.approx(ref_base)
    assert res["scale_descriptor_dim"] == 32 and res_cat["scale_descriptor_dim"] == 64
    assert res["model"] == {"path": str(run), "fingerprint": "x"}


def test_failed_videos_are_counted_and_pending_refused(tmp_path):
    fs, a = make_store(tmp_path / "s.zarr", n=30, seed=0)
    test, train = _split(a, 1)
    fs.mark_failed([test[0]], ["cannot decode"])
    res = evaluate_retrieval(fs, 1, ks=(1,))
    assert res["n_queries"] == len(test) - 1
    assert res["excluded_not_extracted"]["queries"] == {"pending": 0, "failed": 1}
    fs.reset_rows([train[0]])
    with pytest.raises(ScaleError, match="pending"):
        evaluate_retrieval(fs, 1, ks=(1,))
    res = evaluate_retrieval(fs, 1, ks=(1,), allow_incomplete=True)
    assert res["n_gallery"] == len(train) - 1


def test_unlabelled_queries_and_bad_ks_are_refused(tmp_path):
    fs, a = make_store(tmp_path / "s.zarr", n=30, seed=0)
    with pytest.raises(ScaleError, match="positive"):
        evaluate_retrieval(fs, 1, ks=(0, 5))
    labels = a["labels"].copy()
    labels[_split(a, 1)[0][0]] = -1
    fs2 = FeatureStore.create(tmp_path / "u.zarr", video_ids=a["video_ids"], labels=labels, splits=a["splits"],
                              class_names=[f"c{i}" for i in range(6)], n_clips=5, feature_dim=16, attrs={})
    fs2.write_rows(np.arange(30), features=a["features"], coords=a["coords"])
    with pytest.raises(ScaleError, match="no label"):
        evaluate_retrieval(fs2, 1, ks=(1,))


def test_approximate_search_with_full_probe_equals_exact(tmp_path):
    fs, _ = make_store(tmp_path / "s.zarr", n=120, d=16, classes=6, seed=4, class_spread=0.35)
    exact = evaluate_retrieval(fs, 1, ks=KS)
    ivf = evaluate_retrieval(fs, 1, ks=KS, index_params=IndexParams("ivf", nlist=2, nprobe=2))
    assert ivf["recall"] == pytest.approx(exact["recall"])
    assert ivf["index_params"]["nlist"] == 2 and "approximate" in ivf["protocol"]["search"]
