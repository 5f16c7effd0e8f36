"""The contracts layer: each artefact recognises what scale wrote and nothing else; its JSON parts round-trip;
it stays free of torch, zarr, faiss and of scale's other modules."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from scale_toolkit.atomic import write_result
from scale_toolkit.contracts.export import REQUIRED, ExportFile
from scale_toolkit.contracts.index import IndexFiles, SidecarHeader, media_names
from scale_toolkit.contracts.progress import ExtractBlock, ExtractVideo, TrainEpoch, TrainWarning
from scale_toolkit.contracts.result import RESULT_MARKER, ResultDocument
from scale_toolkit.contracts.run import CONFIG_FILE, RunFiles
from scale_toolkit.contracts.store import StoreFiles


def test_sidecar_header_round_trip_and_key_order() -> None:
    header = SidecarHeader(index_file="a.faiss", index_bytes=10, index_sha256="ab", ntotal=3, dim=8)
    doc = header.to_json()
    assert list(doc) == ["format", "version", "index_file", "index_bytes", "index_sha256", "ntotal", "dim"]
    assert SidecarHeader.from_json(json.loads(json.dumps(doc))) == header
    with pytest.raises(ValueError):
        SidecarHeader.from_json({"format": "something else"})
    with pytest.raises(ValueError):
        SidecarHeader.from_json({**doc, "ntotal": "many"})


def test_index_files_and_media_layout(tmp_path) -> None:
    files = IndexFiles.at(tmp_path / "g.faiss")
    assert files.sidecar.name == "g.faiss.json" and files.media.name == "g.faiss.media"
    files.index.write_bytes(b"x")
    assert not IndexFiles.is_ours(files.index)  # no sidecar yet
    files.sidecar.write_text(json.dumps({"format": "scale-retrieval-index"}))
    assert IndexFiles.is_ours(files.index)
    files.media.mkdir()
    (files.media / media_names("0123456789abcdef0123")["poster"]).write_bytes(b"jpg")
    assert IndexFiles.is_media_dir(files.media) and IndexFiles.owns_media_dir(files.media)
    (files.media / "notes.txt").write_text("mine")
    assert not IndexFiles.is_media_dir(files.media)


def test_result_document_marks_and_reads(tmp_path) -> None:
    doc = ResultDocument("probe", {"results": {}, RESULT_MARKER: "retrieve"})
    assert doc.to_json() == {RESULT_MARKER: "probe", "results": {}}
    assert ResultDocument.from_json(doc.to_json()) == ResultDocument("probe", {"results": {}})
    out = write_result(tmp_path / "r.json", "retrieve", {"recall": 1})
    assert ResultDocument.kind_of_file(out) == "retrieve" and not ResultDocument.is_ours(out, "probe")
    (tmp_path / "user.json").write_text(json.dumps({"results": 1}))
    assert ResultDocument.kind_of_file(tmp_path / "user.json") is None
    with pytest.raises(ValueError):
        ResultDocument.from_json({"results": 1})


def test_store_run_and_export_recognised(tmp_path) -> None:
    store = tmp_path / "s.zarr"
    store.mkdir()
    (store / "zarr.json").write_text(json.dumps({"attributes": {"schema_version": 1}}))
    run = tmp_path / "run"
    run.mkdir()
    (run / CONFIG_FILE).write_text(json.dumps({"train": {}, "model": {}}))
    assert StoreFiles.is_ours(store) and not StoreFiles.is_ours(run)
    assert RunFiles.is_ours(run) and not RunFiles.is_ours(store)
    export = tmp_path / "e.npz"
    np.savez(export, **{k: np.zeros(1) for k in REQUIRED})
    partial = tmp_path / "p.npz"
    np.savez(partial, features=np.zeros(1))
    assert ExportFile.is_ours(export) and not ExportFile.is_ours(partial)


def test_contracts_import_nothing_heavy() -> None:
    code = ("import sys, scale_toolkit.contracts.index, scale_toolkit.contracts.result, scale_toolkit.contracts.run, "
            "scale_toolkit.contracts.store, scale_toolkit.contracts.export, scale_toolkit.contracts.picture, "
            "scale_toolkit.contracts.probe_result, scale_toolkit.contracts.progress, scale_toolkit.contracts.extract\n"
            "ours = sorted(m for m in sys.modules if m.startswith('scale_toolkit.')\n"
            "              and not m.startswith('scale_toolkit.contracts'))\n"
            "print(sorted(m for m in ('torch', 'zarr', 'faiss', 'h5py', 'numpy') if m in sys.modules), ours)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[] []"


def test_progress_events_read_as_the_dicts_they_replace() -> None:
    """``to_json`` is the dict a stage sent before the events were typed (key order included), and
    ``event[key]`` reads it, so a callback written against the dicts keeps working."""
    epoch = TrainEpoch(epoch=2, step=4, loss=1.5, mcm_loss=1.0, set_loss=0.5, mcm_acc=0.25, set_acc=0.5, lr=1e-3,
                       samples_per_s=10.0, epoch_time_s=2.0)
    assert list(epoch.to_json()) == ["event", "epoch", "step", "loss", "mcm_loss", "set_loss", "mcm_acc", "set_acc", "lr",
                                     "samples_per_s", "epoch_time_s"]  # no val_* keys in an epoch that scored none
    assert not epoch.scored_held_out and epoch["event"] == "epoch" and epoch["step"] == 4
    held_out = {"val_mcm_loss": 1.0, "val_set_loss": 2.0, "val_mcm_acc": 0.5, "val_set_acc": 0.75}
    scored = replace(epoch, **held_out)
    assert scored.scored_held_out and scored.to_json() == {**epoch.to_json(), **held_out}
    with pytest.raises(KeyError):
        TrainWarning(epoch=0, message="m")["step"]
    counts = dict(total=12, done=3, failed=1, clips=45, written=0, started=5.0)
    video = ExtractVideo(**counts, video_id="a/b.mp4", error=None)
    assert video.to_json() == {**counts, "event": "video", "video_id": "a/b.mp4", "error": None}
    assert list(video.to_json()) == [*counts, "event", "video_id", "error"]
    assert ExtractBlock(**counts).to_json() == {**counts, "event": "block"}


def test_extract_config_old_import_paths_name_the_contracts_class() -> None:
    from scale_toolkit.contracts.extract import ExtractConfig
    from scale_toolkit.contracts.store import DEFAULT_ROWS_PER_CHUNK
    from scale_toolkit.extract import ExtractConfig as from_package
    from scale_toolkit.extract.config import ExtractConfig as from_module
    from scale_toolkit.store.layout import DEFAULT_ROWS_PER_CHUNK as from_layout

    assert from_package is from_module is ExtractConfig and from_layout == DEFAULT_ROWS_PER_CHUNK == 16
