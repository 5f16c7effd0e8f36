"""Media at index build time (`scale retrieve --build-index --thumbs`) and `scale serve`'s one-line errors."""
from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from scale_toolkit.retrieval.media import frame_plan, media_dir

from ..retrieval.helpers import make_store


def test_media_files_are_small_real_images_listed_in_the_sidecar(video_index):
    from PIL import Image

    meta = json.loads((video_index["index"].parent / "v.faiss.json").read_text())
    media = meta["media"]
    assert media["dir"] == "v.faiss.media" and not media["failed"] and len(media["items"]) == len(video_index["ids"])
    folder = media_dir(video_index["index"])
    moving = 0
    for item in media["items"]:
        poster, preview = Image.open(folder / item["poster"]), Image.open(folder / item["preview"])
        assert poster.format == "JPEG" and poster.size[0] == 240
        assert preview.format == "WEBP" and preview.size[0] == 160
        assert (folder / item["preview"]).stat().st_size < 200_000
        if preview.n_frames > 3:  # the encoder merges identical frames: still videos give one
            moving += 1
            assert preview.info["loop"] == 0  # loops forever
    assert moving >= 8  # 4 of the 6 synthetic classes move
    assert not list(folder.glob(".*.tmp"))  # written through temp files, none left behind


def test_frame_plan_is_a_few_seconds_around_the_middle():
    mid, idx, fps = frame_plan(300, 25.0)
    assert mid == 149 and idx[0] < mid < idx[-1] and (idx[-1] - idx[0]) / 25.0 <= 3.0 and fps == pytest.approx(25 / 4)
    mid, idx, _ = frame_plan(10, 30.0)  # shorter than the preview: the whole video
    assert mid == 4 and idx[0] == 0 and idx[-1] <= 9
    assert frame_plan(1, 0.0)[1].tolist() == [0]


def test_build_index_thumbs_auto_and_reuse(tmp_path, run_cli, video_index):
    store = video_index["store"]
    code, out, err = run_cli("retrieve", "--store", store, "--build-index", tmp_path / "a.faiss")
    assert code == 0, err
    assert "posters and previews in" in out
    first = json.loads((tmp_path / "a.faiss.json").read_text())["media"]
    folder = media_dir(tmp_path / "a.faiss")
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    # a rebuild reuses the files of unchanged videos
    assert run_cli("retrieve", "--store", store, "--build-index", tmp_path / "a.faiss")[0] == 0
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert json.loads((tmp_path / "a.faiss.json").read_text())["media"]["items"] == first["items"]
    # --no-thumbs: no media in the sidecar
    assert run_cli("retrieve", "--store", store, "--no-thumbs", "--build-index", tmp_path / "b.faiss")[0] == 0
    assert json.loads((tmp_path / "b.faiss.json").read_text())["media"] is None


def test_an_unreadable_gallery_video_gets_no_media_and_the_build_goes_on(tmp_path, video_index):
    import shutil

    from scale_toolkit.retrieval.query import build_gallery_index
    from scale_toolkit.store import FeatureStore

    videos = tmp_path / "videos"
    shutil.copytree(video_index["videos"], videos)
    broken = video_index["ids"][3]
    (videos / broken).write_bytes(b"not a video any more")
    shutil.copytree(video_index["store"], tmp_path / "e.zarr")
    fs = FeatureStore.open(tmp_path / "e.zarr", mode="r+")
    fs.update_attrs(dataset_root=str(videos))
    info = build_gallery_index(fs, tmp_path / "g.faiss", thumbs=True)
    media = info["media"]
    assert list(media["failed"]) == [broken] and media["items"][3] is None
    assert sum(item is not None for item in media["items"]) == len(video_index["ids"]) - 1


def test_thumbs_without_reachable_videos_is_one_line(tmp_path, run_cli):
    make_store(tmp_path / "s.zarr", n=12)
    code, _, err = run_cli("retrieve", "--store", tmp_path / "s.zarr", "--thumbs", "--build-index", tmp_path / "g.faiss")
    assert code == 2 and "--thumbs needs the gallery videos" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g.faiss").exists()
    code, _, err = run_cli("retrieve", "--store", tmp_path / "s.zarr", "--build-index", tmp_path / "g.faiss")
    assert code == 0 and "no posters or previews" in err


def test_serve_errors_are_one_line(tmp_path, run_cli, model_index):
    code, _, err = run_cli("serve", "--index", tmp_path / "missing.faiss")
    assert code == 2 and err.startswith("error: index not found") and len(err.strip().splitlines()) == 1
    assert run_cli("serve", "--index", model_index["index"], "--port", "70000")[0] == 2
    assert run_cli("serve", "--index", model_index["index"], "--max-upload-mb", "0")[0] == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, _, err = run_cli("serve", "--index", model_index["index"], "--port", str(port))
    assert code == 2 and "port is in use" in err and len(err.strip().splitlines()) == 1


def test_uploaded_file_never_needs_a_gallery_decode(video_index, monkeypatch):
    """The server answers media requests from files: decoding a gallery video per request would fail here."""
    import scale_toolkit.data.decode as decode
    from scale_toolkit.serve.app import create_app

    from .conftest import local_client

    def refuse(*args, **kwargs):
        raise AssertionError("the server decoded a video")

    monkeypatch.setattr(decode, "read_frames", refuse)
    monkeypatch.setattr(decode, "probe_video", refuse)
    with local_client(create_app(video_index["index"])) as client:
        res = client.post("/api/search", json={"video_id": video_index["ids"][0]}).json()
        for r in res["results"]:
            assert client.get(r["poster"]).status_code == 200 and client.get(r["preview"]).status_code == 200
    assert np.isfinite([r["similarity"] for r in res["results"]]).all()


def test_a_crashing_or_hanging_decoder_costs_one_request_not_the_server(tmp_path):
    from scale_toolkit.serve.search import FileEmbedder, RequestError

    from . import _workers

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 10)
    embedder = FileEmbedder({}, 4, None, timeout_s=3)
    try:
        embedder.worker = _workers.crash
        with pytest.raises(RequestError, match="the decoder crashed on clip.mp4") as err:
            embedder.embed(video, "clip.mp4")
        assert err.value.status == 422
        embedder.worker = _workers.hang
        with pytest.raises(RequestError, match="took longer than 3 s"):
            embedder.embed(video, "clip.mp4")
        embedder.worker = _workers.fine  # a fresh worker answers the next upload
        feats, coords, poster = embedder.embed(video, "clip.mp4")
        assert feats.shape == (1, 3, 4) and coords.shape == (1, 3, 6) and poster is None
    finally:
        embedder.close()
