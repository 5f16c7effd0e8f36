"""`scale info` on a retrieval index and on a run directory (issue #30): a short summary, --json for all."""
from __future__ import annotations

import json

import pytest

from scale_toolkit.model import ScaleConfig
from scale_toolkit.train import TrainConfig, train
from tests.retrieval.helpers import make_model_dir, make_store
from tests.train.helpers import TINY_MODEL, make_train_store

INDEX_ATTRS = {"backbone_name": "videomae-b", "backbone": {"name": "videomae-b"}, "checkpoint_sha256": "ab12cd",
               "view": {"name": "eval15", "clips": 5}}


@pytest.fixture
def index(tmp_path, run_cli):
    make_store(tmp_path / "s.zarr", attrs=INDEX_ATTRS)
    make_model_dir(tmp_path / "run")
    code, _, err = run_cli("retrieve", "--store", tmp_path / "s.zarr", "--model", tmp_path / "run",
                           "--build-index", tmp_path / "g.faiss", "--no-thumbs")
    assert code == 0, err
    return tmp_path / "g.faiss"


def _rows(out: str) -> dict[str, str]:
    """The table's key: value rows (values folded over several lines joined back)."""
    rows, key = {}, None
    for ln in out.splitlines():
        if not ln.startswith("│"):
            continue
        cells = [c.strip() for c in ln.strip("│").split("│")]
        if cells[0]:
            key = cells[0]
            rows[key] = cells[1]
        elif key:
            rows[key] += " " + cells[1]
    return rows


def test_info_on_an_index_names_backbone_descriptor_type_videos_and_media(index, run_cli):
    for given in (index, index.with_name("g.faiss.json")):  # the index or its sidecar
        code, out, err = run_cli("info", given)
        assert code == 0, err
        rows = _rows(out)
        assert rows["backbone"] == "videomae-b" and rows["checkpoint_sha256"] == "ab12cd"
        assert rows["type"] == "flat" and rows["descriptor"].startswith("set, 32-d")
        assert rows["videos"].startswith("60 (all extracted videos of the store), 6 classes")
        assert rows["media"].startswith("none") and rows["sidecar"] == "matches the index file"
    code, out, _ = run_cli("info", index, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ntotal"] == 60 and doc["descriptor"] == "set" and "video_ids" not in doc
    assert doc["summary"]["backbone"] == "videomae-b"


def test_info_on_an_index_whose_file_was_replaced_says_so(index, run_cli):
    index.write_bytes(index.read_bytes() + b"\0")
    code, out, _ = run_cli("info", index)
    assert code == 0 and _rows(out)["sidecar"].startswith("does NOT match")


def test_info_on_a_run_is_a_short_summary_and_json_has_the_config(tmp_path, run_cli):
    make_train_store(tmp_path / "train.zarr")
    train(TrainConfig(store=str(tmp_path / "train.zarr"), out=str(tmp_path / "run"), epochs=3, batch_size=12,
                      warmup=1.0, save_every=0, model=ScaleConfig(**TINY_MODEL)))
    code, out, err = run_cli("info", tmp_path / "run")
    assert code == 0, err
    rows = _rows(out)
    assert rows["epochs"] == "3 of 3 done"
    assert rows["best held-out SET top-1"].endswith(")") and "epoch" in rows["best held-out SET top-1"]
    assert rows["model"].startswith("hidden 32, 2 layers, 4 heads, input 24-d; model.pt")
    assert "36 train videos" in rows["store"] and rows["checkpoints"] == "checkpoint_last.pt, model.pt"
    assert "created" in rows and '"train"' not in out  # not the raw config
    assert len(out.splitlines()) < 25
    code, out, _ = run_cli("info", tmp_path / "run", "--json")
    doc = json.loads(out)
    assert doc["config"]["train"]["epochs"] == 3 and doc["logged_steps"] == 3


def test_info_on_an_unfinished_run_says_how_to_continue(tmp_path, run_cli):
    make_train_store(tmp_path / "train.zarr")
    train(TrainConfig(store=str(tmp_path / "train.zarr"), out=str(tmp_path / "run"), epochs=2, batch_size=12,
                      warmup=1.0, save_every=0, model=ScaleConfig(**TINY_MODEL)))
    (tmp_path / "run" / "model.pt").unlink()  # as if killed after its last checkpoint
    rows = _rows(run_cli("info", tmp_path / "run")[1])
    assert rows["epochs"] == "2 of 2 done (not finished: --resume continues it)"
