"""`scale retrieve` end to end: evaluation JSON, index build + queries, file queries, clear errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from .helpers import make_model_dir, make_store, reference_recall


def test_evaluate_json_has_recall_protocol_and_fingerprints(tmp_path, run_cli):
    fs, a = make_store(tmp_path / "s.zarr", n=60, d=16, classes=5, seed=1, class_spread=0.4)
    run = make_model_dir(tmp_path / "run", input_dim=16)
    code, out, err = run_cli("retrieve", "--store", tmp_path / "s.zarr", "--model", run, "--json", tmp_path / "r.json")
    assert code == 0, err
    assert "R@1" in out and "centring: none" in out and "VCOP" in out and "SCALE: set" in out
    res = json.loads((tmp_path / "r.json").read_text())
    assert list(res["recall"]) == ["1", "5", "10", "20", "50"]
    assert list(res["scale_recall"]) == ["1", "5", "10", "20", "50"]
    test, train = np.flatnonzero(a["splits"][0] == 2), np.flatnonzero(a["splits"][0] == 1)
    f = a["features"].astype(np.float64).mean(1)
    assert res["recall"] == pytest.approx(reference_recall(f[test], a["labels"][test], f[train], a["labels"][train],
                                                           (1, 5, 10, 20, 50), False))
    assert res["store"]["fingerprint"] == fs.fingerprint() and len(res["model"]["fingerprint"]) == 16
    assert res["protocol"]["center"] is False and res["config"]["center"] is False
    assert res["protocol"]["queries"] == "test-split videos of split 1"

    code, out, err = run_cli("retrieve", "--store", tmp_path / "s.zarr", "--split", "2", "--center", "--k", "1,3",
                             "--k", "7", "--json", tmp_path / "c.json")
    assert code == 0, err
    res = json.loads((tmp_path / "c.json").read_text())
    assert list(res["recall"]) == ["1", "3", "7"] and "scale_recall" not in res
    assert "CoCLR" in res["protocol"]["centring"] and "CoCLR" in out and res["split"] == 2


def test_build_index_then_query_by_id(tmp_path, run_cli):
    _, a = make_store(tmp_path / "s.zarr", n=40, d=16, classes=4, seed=0)
    code, out, err = run_cli("retrieve", "--store", tmp_path / "s.zarr", "--build-index", tmp_path / "g.faiss",
                             "--index-type", "hnsw")
    assert code == 0, err
    assert (tmp_path / "g.faiss").exists() and (tmp_path / "g.faiss.json").exists()
    code, out, err = run_cli("retrieve", "--index", tmp_path / "g.faiss", "--query", a["video_ids"][3], "--top", "4",
                             "--json", tmp_path / "q.json")
    assert code == 0, err
    res = json.loads((tmp_path / "q.json").read_text())["query"]
    assert len(res["results"]) == 4 and a["video_ids"][3] not in [r["video_id"] for r in res["results"]]
    top = res["results"][0]
    assert top["class_name"] in out and f"{top['similarity']:.4f}" in out and top["video_id"] in out
    assert res["index_type"] == "hnsw"


def test_query_file_when_store_checkpoint_is_absent_fails_clearly(tmp_path, run_cli):
    attrs = {"backbone_name": "videomae-b", "backbone": {"name": "videomae"}, "checkpoint": str(tmp_path / "gone" / "vmae.pth"),
             "checkpoint_sha256": "ab" * 32, "view": {"name": "eval15", "clips": 5}}
    make_store(tmp_path / "s.zarr", n=20, attrs=attrs)
    assert run_cli("retrieve", "--store", tmp_path / "s.zarr", "--build-index", tmp_path / "g.faiss")[0] == 0
    video = tmp_path / "some.mp4"
    video.write_bytes(b"\0" * 64)
    code, out, err = run_cli("retrieve", "--index", tmp_path / "g.faiss", "--query", video)
    assert code == 2
    assert "vmae.pth" in err and "does not exist" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_query_file_goes_through_embed_video_and_model(tmp_path, run_cli, monkeypatch):
    """The file path: embed_video gets the store's attrs; the SCALE model of the index is applied."""
    import scale_toolkit.extract as extract

    fs, a = make_store(tmp_path / "s.zarr", n=30, d=16, seed=2)
    run = make_model_dir(tmp_path / "run", input_dim=16)
    seen = {}

    def fake_embed(path, store_attrs, device="cpu"):
        seen["attrs"], seen["path"] = store_attrs, str(path)
        return a["features"][11].astype(np.float32), a["coords"][11]

    monkeypatch.setattr(extract, "embed_video", fake_embed)
    assert run_cli("retrieve", "--store", tmp_path / "s.zarr", "--model", run, "--build-index", tmp_path / "m.faiss")[0] == 0
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    code, out, err = run_cli("retrieve", "--index", tmp_path / "m.faiss", "--query", video, "--top", "3",
                             "--json", tmp_path / "q.json")
    assert code == 0, err
    res = json.loads((tmp_path / "q.json").read_text())["query"]
    assert seen["attrs"]["backbone_name"] == "tiny" and seen["path"] == str(video)
    assert res["descriptor"] == "set" and res["query"]["kind"] == "file"
    assert res["results"][0]["video_id"] == a["video_ids"][11]  # same features as row 11: itself, first
    assert res["results"][0]["similarity"] == pytest.approx(1.0, abs=1e-3)


def test_real_video_file_query_finds_itself(tmp_path, run_cli):
    """Extract a tiny synthetic dataset with the built-in tiny backbone, index it, and query one
    of its video files: decoding + embedding on the fly reproduces the stored features."""
    from scale_toolkit.demo.synthetic import SyntheticSpec, make_synthetic_dataset
    from scale_toolkit.extract import ExtractConfig, run_extraction
    from scale_toolkit.store import FeatureStore

    root = tmp_path / "videos"
    csv = make_synthetic_dataset(root, SyntheticSpec(videos_per_class=1, frames=24, height=64, width=80))
    run_extraction(ExtractConfig(backbone="tiny", dataset="csv", csv=csv, root=root, view="eval15",
                                 out=tmp_path / "s.zarr", workers=0, threads=1))
    fs = FeatureStore.open(tmp_path / "s.zarr")
    assert run_cli("retrieve", "--store", tmp_path / "s.zarr", "--build-index", tmp_path / "g.faiss")[0] == 0
    vid = fs.video_ids[2]
    code, out, err = run_cli("retrieve", "--index", tmp_path / "g.faiss", "--query", root / vid, "--top", "2",
                             "--json", tmp_path / "q.json")
    assert code == 0, err
    res = json.loads((tmp_path / "q.json").read_text())["query"]
    assert res["results"][0]["video_id"] == vid
    assert res["results"][0]["similarity"] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("args,message", [
    (["--query", "x"], "--query needs --index"),
    (["--index", "i.faiss"], "--index is for queries"),
    ([], "--store STORE.zarr is required"),
    (["--store", "s.zarr", "--index-type", "lsh"], "unknown --index-type"),
    (["--store", "missing.zarr"], "feature store not found"),
    (["--index", "i.faiss", "--query", "a", "--model", "run"], "--model is not used with --index"),
])
def test_user_mistakes_are_one_line_exit_2(tmp_path, run_cli, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    if "s.zarr" in args:
        make_store(tmp_path / "s.zarr", n=10)
    code, out, err = run_cli("retrieve", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_query_unknown_id_and_model_for_other_backbone(tmp_path, run_cli):
    make_store(tmp_path / "s.zarr", n=20, d=16)
    assert run_cli("retrieve", "--store", tmp_path / "s.zarr", "--build-index", tmp_path / "g.faiss")[0] == 0
    code, _, err = run_cli("retrieve", "--index", tmp_path / "g.faiss", "--query", "no/such/video.avi")
    assert code == 2 and "neither an existing video file nor a video id" in err
    run = make_model_dir(tmp_path / "run", input_dim=32)
    code, _, err = run_cli("retrieve", "--store", tmp_path / "s.zarr", "--model", run)
    assert code == 2 and "expects 32-d clip features" in err
