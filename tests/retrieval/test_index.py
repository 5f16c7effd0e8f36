"""Index build, atomic save, reload and query; descriptors shared with the k-NN probe."""
from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from scale_toolkit.errors import ScaleError
from scale_toolkit.retrieval import descriptors as D
from scale_toolkit.retrieval.index import (IndexParams, build_index, load_index, save_index, search,
                                           sidecar_path)
from scale_toolkit.retrieval.query import build_gallery_index, query_index

from .helpers import make_model_dir, make_store


def _clustered(n, d, seed=0, centres=20):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d))
    x = c[rng.integers(0, centres, n)] + 0.3 * rng.standard_normal((n, d))
    return D.l2_normalize(x)


def test_descriptor_kinds_and_normalisation():
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((5, 4, 8)).astype(np.float16)
    raw = D.video_descriptors(feats)
    np.testing.assert_allclose(raw, feats.astype(np.float32).mean(1), rtol=1e-6)
    fin = D.finalize_descriptors(raw, D.descriptor_mean(raw))
    np.testing.assert_allclose(np.linalg.norm(fin, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(fin, D.l2_normalize(raw - raw.mean(0)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ScaleError, match="needs a SCALE model"):
        D.video_descriptors(feats, kind="set")
    with pytest.raises(ScaleError, match="unknown descriptor"):
        D.video_descriptors(feats, kind="cls")


@pytest.mark.parametrize("kind,params", [
    ("flat", {}), ("ivf", {"nlist": 16, "nprobe": 4}), ("hnsw", {"hnsw_m": 16, "ef_search": 32}),
    ("ivfpq", {"nlist": 8, "nprobe": 2}),
])
def test_index_written_reloaded_and_queried_returns_same_neighbours(tmp_path, kind, params):
    x = _clustered(2000, 32, seed=1)
    q = _clustered(50, 32, seed=2)
    index, resolved = build_index(x, IndexParams(kind, **params))
    sims, ids = search(index, q, 10)
    params = {"index_type": kind, **{k: getattr(resolved, k) for k in ("nprobe", "ef_search")}}
    save_index(index, tmp_path / "g.faiss", {"index_params": params})
    loaded, meta = load_index(tmp_path / "g.faiss")
    sims2, ids2 = search(loaded, q, 10)
    np.testing.assert_array_equal(ids, ids2)
    np.testing.assert_allclose(sims, sims2, rtol=1e-6)
    assert meta["ntotal"] == 2000 and meta["dim"] == 32
    if kind == "flat":  # exact: the brute-force top-10
        np.testing.assert_array_equal(ids, np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10])
    if kind in ("ivf", "ivfpq"):
        assert faiss.extract_index_ivf(loaded).nprobe == params["nprobe"]


def test_ivfpq_refuses_tiny_gallery_and_params_scale_with_n():
    with pytest.raises(ScaleError, match="ivfpq needs at least"):
        build_index(_clustered(300, 16), IndexParams("ivfpq"))
    p = IndexParams("ivf").resolved(1_000_000, 768)
    assert p.nlist == 1000 and p.nprobe == 62 and p.train_size == 64_000
    p = IndexParams("ivfpq").resolved(1_000_000, 768)
    assert p.pq_m == 96 and p.pq_bits == 8
    assert IndexParams("ivf").resolved(50, 8).nlist == 1  # never fewer than 39 training points per cell


def test_killed_write_leaves_previous_index_usable(tmp_path, monkeypatch):
    x = _clustered(300, 16)
    index, _ = build_index(x)
    path = tmp_path / "g.faiss"
    save_index(index, path, {"tag": "old"})
    before = sorted(p.name for p in tmp_path.iterdir())

    class Dying:  # the serialized index: half of it reaches the temp file, then the process "dies"
        def tobytes(self):
            raise KeyboardInterrupt

    real_open = open

    def half_writing_open(file, mode="r", *args, **kw):
        f = real_open(file, mode, *args, **kw)
        if "w" in mode and "b" in mode:
            f.write(b"\0" * 100)
        return f

    monkeypatch.setattr(faiss, "serialize_index", lambda idx: Dying())
    monkeypatch.setattr("builtins.open", half_writing_open)
    with pytest.raises(KeyboardInterrupt):
        save_index(build_index(_clustered(400, 16, seed=3))[0], path, {"tag": "new"})
    monkeypatch.undo()
    loaded, meta = load_index(path)
    assert meta["tag"] == "old" and loaded.ntotal == 300
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temp files left behind


def test_sidecar_of_another_index_is_refused(tmp_path):
    a, b = tmp_path / "a.faiss", tmp_path / "b.faiss"
    save_index(build_index(_clustered(100, 8))[0], a, {})
    save_index(build_index(_clustered(100, 8, seed=1))[0], b, {})
    sidecar_path(a).write_text(sidecar_path(b).read_text())
    with pytest.raises(ScaleError, match="does not match its sidecar"):
        load_index(a)
    sidecar_path(b).unlink()
    with pytest.raises(ScaleError, match="no sidecar"):
        load_index(b)
    with pytest.raises(ScaleError, match="index not found"):
        load_index(tmp_path / "missing.faiss")


def test_gallery_index_sidecar_and_query_by_id(tmp_path):
    fs, a = make_store(tmp_path / "s.zarr", n=40, d=16, classes=4, seed=0,
                       attrs={"backbone_name": "tiny", "dataset_root": "/data/ucf"})
    info = build_gallery_index(fs, tmp_path / "all.faiss")
    assert info["n_videos"] == 40 and info["descriptor"] == "mean" and info["center"] is False
    side = json.loads(sidecar_path(tmp_path / "all.faiss").read_text())
    assert side["video_ids"] == a["video_ids"] and side["labels"] == a["labels"].tolist()
    assert side["store"]["fingerprint"] == fs.fingerprint() and side["class_names"][0] == "class0"

    qid = a["video_ids"][7]
    res = query_index(tmp_path / "all.faiss", qid, top=5)
    desc = D.l2_normalize(a["features"].astype(np.float32).mean(1))
    sims = desc @ desc[7]
    sims[7] = -np.inf  # the query itself is left out
    expected = np.argsort(-sims, kind="stable")[:5]
    assert [r["video_id"] for r in res["results"]] == [a["video_ids"][i] for i in expected]
    assert res["results"][0]["path"] == "/data/ucf/" + a["video_ids"][expected[0]]
    assert res["results"][0]["class_name"] == f"class{a['labels'][expected[0]]}"
    np.testing.assert_allclose([r["similarity"] for r in res["results"]], sims[expected], rtol=1e-4)
    assert query_index(tmp_path / "all.faiss", qid, top=1, exclude_self=False)["results"][0]["video_id"] == qid

    # --split N: the gallery is the train part of split N only, centred by its mean
    info = build_gallery_index(fs, tmp_path / "train.faiss", split=2, center=True)
    train = np.flatnonzero(a["splits"][1] == 1)
    assert info["n_videos"] == len(train) and info["gallery"] == "train-split videos of split 2"
    raw = a["features"].astype(np.float32).mean(1)
    mu = raw[train].mean(0)
    res = query_index(tmp_path / "train.faiss", a["video_ids"][int(np.flatnonzero(a["splits"][1] == 2)[0])], top=3)
    qrow = int(np.flatnonzero(a["splits"][1] == 2)[0])
    g = D.l2_normalize(raw[train] - mu)
    qv = D.l2_normalize((raw[qrow] - mu)[None])[0]
    expected = train[np.argsort(-(g @ qv), kind="stable")[:3]]
    assert [r["video_id"] for r in res["results"]] == [a["video_ids"][i] for i in expected]


def test_model_index_refuses_changed_model(tmp_path):
    from scale_toolkit.retrieval.models import load_retrieval_model

    fs, a = make_store(tmp_path / "s.zarr", n=30, d=16, seed=0)
    run = make_model_dir(tmp_path / "run", input_dim=16)
    model, info = load_retrieval_model(run)
    side = build_gallery_index(fs, tmp_path / "m.faiss", model=model, model_info=info, descriptor="set+mean")
    assert side["descriptor"] == "set+mean" and side["model"]["fingerprint"] == info["fingerprint"]
    res = query_index(tmp_path / "m.faiss", a["video_ids"][0], top=3)
    assert len(res["results"]) == 3
    make_model_dir(tmp_path / "run", input_dim=16, seed=1)  # retrained in place
    with pytest.raises(ScaleError, match="changed since the index was built"):
        query_index(tmp_path / "m.faiss", a["video_ids"][0], top=3)
    wrong = make_model_dir(tmp_path / "run8", input_dim=8)
    m8, i8 = load_retrieval_model(wrong)
    with pytest.raises(ScaleError, match="expects 8-d clip features"):
        build_gallery_index(fs, tmp_path / "x.faiss", model=m8, model_info=i8)
