"""Class: the one output policy (scale_toolkit/ownership.py). Every path scale writes is created fresh
or replaces only scale's own artefact of the same kind: result JSON carries "scale_result": KIND and an
unmarked JSON object (a store's zarr.json, a run's config.json, an index sidecar, the user's file) is
never replaced; nothing inside a store, a run directory or an index's media folder is a target;
`--build-index X` checks X, X.json and X.media/. The refusal comes before any work. Real CLI processes."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from .helpers import import_arrays, make_model_dir, make_store, message_lines, scale, tree


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = tmp_path_factory.mktemp("policy")
    make_store(w / "s.zarr", view="eval15")
    make_model_dir(w / "run")
    (w / "run" / "config.json").write_text(json.dumps({"train": {"epochs": 1}, "model": {"hidden": 32}}))
    np.savez(w / "in.npz", **import_arrays())
    code, _, err = scale("retrieve", "--store", w / "s.zarr", "--build-index", w / "g.index")
    assert code == 0, err
    (w / "g.index.media").mkdir()  # as --thumbs writes it where the videos are reachable
    (w / "g.index.media" / "0123456789abcdef0123.poster.jpg").write_bytes(b"\xff\xd8 poster")
    (w / "mine.json").write_text(json.dumps({"my": "notes"}))
    (w / "list.json").write_text("[1, 2, 3]\n")
    (w / "user.index.json").write_text(json.dumps({"user": "sidecar-named file"}))
    (w / "media.index.media").mkdir()
    (w / "media.index.media" / "holiday.jpg").write_bytes(b"\xff\xd8 user photo")
    (w / "pic.confusion.png").write_bytes(b"\x89PNG\r\n\x1a\n a user's picture")
    return w


def _snapshot(root):
    return {p: (root / p).read_bytes() for p in tree(root) if (root / p).is_file()}


def _refused(world, args, words):
    before = _snapshot(world)
    code, out, err = scale(*args)
    lines = message_lines(err)
    assert code == 2, (args, code, out, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], (args, err[-2000:])
    assert _snapshot(world) == before
    return lines[0]


PROBE = ["probe", "--device", "cpu", "--knn", "3"]


@pytest.mark.parametrize("target, words", [
    ("s.zarr/zarr.json", "lies inside the scale feature store"),
    ("s.zarr/features/zarr.json", "lies inside the scale feature store"),
    ("s.zarr/new.json", "lies inside the scale feature store"),
    ("run/config.json", "lies inside the scale training run"),
    ("g.index.json", "not a JSON result file"),
    ("g.index.media/x.json", "lies inside the scale index media folder"),
    ("mine.json", "not a JSON result file"),
    ("list.json", "not a JSON result file"),
])
@pytest.mark.parametrize("cmd", ["probe", "retrieve"])
def test_json_never_replaces_what_is_not_a_marked_result(world, cmd, target, words):
    base = [*PROBE, "--store", world / "s.zarr"] if cmd == "probe" else ["retrieve", "--store", world / "s.zarr"]
    _refused(world, [*base, "--json", world / target], words)


def test_a_result_is_replaced_only_by_its_own_kind_and_the_check_comes_first(world, tmp_path):
    res = tmp_path / "r.json"
    code, _, err = scale(*PROBE, "--store", world / "s.zarr", "--json", res)
    assert code == 0, err
    assert json.loads(res.read_text())["scale_result"] == "probe"
    code, _, err = scale(*PROBE, "--store", world / "s.zarr", "--json", res)  # its own kind: replaced
    assert code == 0, err
    line = _refused(tmp_path, ["retrieve", "--store", world / "s.zarr", "--json", res], "scale retrieve")
    assert "refusing" in line
    # before any work: a store that does not exist is not even looked at
    assert "--json" in _refused(tmp_path, [*PROBE, "--store", tmp_path / "nope.zarr", "--json", world / "mine.json"],
                                "not a JSON result file")


def test_results_of_earlier_versions_are_recognised_by_their_exact_keys(world, tmp_path):
    legacy = {"results": {}, "rows": ["knn"], "splits": [1], "seeds": [0], "config": {}, "store": {"fingerprint": "ab"},
              "protocol": "", "notes": []}
    (tmp_path / "old.json").write_text(json.dumps(legacy))
    code, _, err = scale(*PROBE, "--store", world / "s.zarr", "--json", tmp_path / "old.json")
    assert code == 0, err
    near = {k: v for k, v in legacy.items() if k != "notes"}  # one key short: not recognisably ours
    (tmp_path / "near.json").write_text(json.dumps(near))
    _refused(tmp_path, [*PROBE, "--store", world / "s.zarr", "--json", tmp_path / "near.json"], "not a JSON result file")


def test_probe_picture_beside_the_json_is_checked_before_the_probes_run(world):
    started = time.monotonic()
    _refused(world, [*PROBE, "--store", world / "s.zarr", "--json", world / "pic.json"], "not a picture drawn by scale")
    assert not (world / "pic.json").exists()
    assert time.monotonic() - started < 600  # hang guard only


@pytest.mark.parametrize("index, words", [
    ("user.index", "user.index.json exists and is not a scale index sidecar"),
    ("media.index", "media.index.media exists and is not the media folder of a scale index"),
    ("s.zarr/i.index", "lies inside the scale feature store"),
    ("run/i.index", "lies inside the scale training run"),
])
def test_build_index_checks_the_index_its_sidecar_and_its_media_folder(world, index, words):
    _refused(world, ["retrieve", "--store", world / "s.zarr", "--build-index", world / index], words)


def test_store_and_run_outputs_inside_other_artefacts_are_refused(world):
    _refused(world, ["import", world / "in.npz", "--out", world / "s.zarr" / "inner.zarr"], "lies inside")
    _refused(world, ["import", world / "in.npz", "--out", world / "run" / "x.zarr"], "lies inside")
    _refused(world, ["train", "--store", world / "s.zarr", "--out", world / "s.zarr" / "r", "--device", "cpu"],
             "lies inside")
