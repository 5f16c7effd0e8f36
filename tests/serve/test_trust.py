"""`scale serve` as an untrusted-network service: who may call it (Host, Origin, token), what it
may serve (media only from INDEX.media/), what it says (no server paths), which ids it takes
(any, non-UTF-8 included), what an upload may cost (pixels x frames, checked before decoding),
and that one slow upload never fails another."""
from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from scale_toolkit.serve.app import create_app
from scale_toolkit.serve.search import FileEmbedder, RequestError
from scale_toolkit.store import FeatureStore

from . import _workers
from .conftest import local_client


@pytest.fixture(scope="module")
def app(model_index):
    return create_app(model_index["index"])


def _search(client, vid, **headers):
    return client.post("/api/search", json={"video_id": vid, "limit": 3}, headers=headers)


# ------------------------------------------------------------------ who may call
def test_host_header_must_be_a_loopback_name(app, model_index):
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.nip.io", "192.168.1.10:8000"):
        with TestClient(app, base_url=f"http://{host}") as client:
            for res in (client.get("/"), client.get("/api/index"), client.get("/healthz")):
                assert res.status_code == 421 and "loopback" in res.json()["error"], host
    for host in ("127.0.0.1:8000", "localhost:1234", "[::1]:8000", "LOCALHOST"):
        with TestClient(app, base_url=f"http://{host}") as client:
            assert client.get("/api/index").status_code == 200, host
    with TestClient(create_app(model_index["index"], host="0.0.0.0"), base_url="http://myhost.lan:8000") as client:
        assert client.get("/healthz").status_code == 200  # listening for the network: any name reaches it


def test_state_changing_requests_need_same_origin_or_the_token(app, model_index):
    vid = model_index["video_ids"][0]
    token = app.state.token
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        refused = [
            {},  # a script without the token
            {"X-Scale-Token": "guess"},
            {"Origin": "http://127.0.0.1:9000"},  # another port: another origin
            {"Origin": "http://127.0.0.1:9000", "X-Scale-Token": token},  # a foreign page never passes
            {"Origin": "null"},  # a sandboxed frame or a file: page
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site", "X-Scale-Token": token},
            {"Origin": "http://evil.example"},
        ]
        for headers in refused:
            res = _search(client, vid, **headers)
            assert res.status_code == 403 and set(res.json()) == {"error"}, (headers, res.text)
        allowed = [{"X-Scale-Token": token}, {"Origin": "http://127.0.0.1:8000"},
                   {"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:8000"}, {"Sec-Fetch-Site": "same-origin"}]
        for headers in allowed:
            assert _search(client, vid, **headers).status_code == 200, headers
        # the page holds the token; GET answers carry headers that keep them out of other sites' frames
        page = client.get("/")
        assert f'content="{token}"' in page.text and client.get("/api/index").json()["token"] == token
        assert page.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
    assert create_app(model_index["index"]).state.token != token  # one token per server


# ------------------------------------------------------------------ what it may serve
@pytest.fixture
def crafted(tmp_path, video_index):
    """A copy of the media index whose sidecar names files outside INDEX.media/ in every way."""
    src = video_index["index"]
    for suffix in ("", ".json"):
        shutil.copy(str(src) + suffix, tmp_path / ("v.faiss" + suffix))
    shutil.copytree(str(src) + ".media", tmp_path / "v.faiss.media")
    secret = tmp_path / "secret.txt"
    secret.write_text("the user's private file")
    media = tmp_path / "v.faiss.media"
    (media / "inside-link.jpg").symlink_to(secret)
    (media / "loop.jpg").symlink_to(media / "loop.jpg")
    meta = json.loads((tmp_path / "v.faiss.json").read_text())
    entry = meta if "media" in meta else next(v for v in meta.values() if isinstance(v, dict) and "media" in v)
    items = entry["media"]["items"]
    good = dict(items[0])
    crafted = [{"poster": "../secret.txt", "preview": good["preview"]},
               {"poster": str(secret), "preview": good["preview"]},
               {"poster": "inside-link.jpg", "preview": good["preview"]},
               {"poster": "sub/../../secret.txt", "preview": good["preview"]},
               {"poster": 5, "preview": None},
               {"poster": "loop.jpg", "preview": good["preview"]},
               {"poster": ".", "preview": good["preview"]},
               "not an item"]
    items[1:1 + len(crafted)] = crafted
    (tmp_path / "v.faiss.json").write_text(json.dumps(meta))
    return tmp_path / "v.faiss", video_index["ids"], len(crafted), secret


def test_a_crafted_sidecar_cannot_make_it_serve_other_files(crafted):
    index, ids, n_crafted, secret = crafted
    with local_client(create_app(index)) as client:
        for vid in ids[1:1 + n_crafted]:
            item = client.get(f"/api/items/{vid}").json()
            assert item["poster"] is None  # no media: the page shows a placeholder
            for kind in ("poster.jpg", "preview.webp"):
                res = client.get(f"/media/{vid}/{kind}")
                assert res.status_code == 404 and b"private" not in res.content
        ok = client.get(f"/media/{ids[0]}/poster.jpg")
        assert ok.status_code == 200 and ok.content[:3] == b"\xff\xd8\xff"
        # a media file swapped for a link out while the server runs is refused too
        poster = client.get(f"/api/items/{ids[-1]}").json()["poster"]
        assert client.get(poster).status_code == 200
        media = index.with_name("v.faiss.media")
        target = next(p for p in media.iterdir() if p.name.endswith(".poster.jpg") and
                      client.get(poster).content == p.read_bytes())
        target.unlink()
        target.symlink_to(secret)
        res = client.get(poster)
        assert res.status_code == 404 and b"private" not in res.content
        target.unlink()  # and one deleted while the server runs is a 404, not an error
        assert client.get(poster).status_code == 404
        for path in ("/static/../v.faiss.json", "/static/%2e%2e/%2e%2e/secret.txt", "/media/..%2f..%2fsecret.txt/poster.jpg"):
            res = client.get(path)
            assert res.status_code in (404, 400) and b"private" not in res.content and b"video_ids" not in res.content


def test_answers_name_no_server_paths(model_index):
    root = str(Path(model_index["index"]).parent)
    vid = model_index["video_ids"][3]
    with local_client(create_app(model_index["index"])) as client:
        texts = [client.get("/").text, client.get("/api/index").text, client.get(f"/api/items/{vid}").text,
                 client.get("/api/gallery").text, _search(client, vid).text,
                 client.post("/api/search", json={"video_id": "nope"}).text]
    for text in texts:
        assert root not in text and "/tmp/" not in text and '"path"' not in text, text[:300]
    info = json.loads(texts[1])
    assert info["store"] == "s.zarr" and info["model"]["name"] and info["model"]["fingerprint"]


# ------------------------------------------------------------------ any id
ODD_IDS = ["caf\udce9/v_\udcff\udcfe.avi", "back\\slash/a\\x41.avi", "quote\"s/<script>alert(1)</script>.avi",
           "sp ace/100% sure?#frag.avi", "ünï/çødé ✓.avi", "plain/ok.avi"]


@pytest.fixture(scope="module")
def odd_index(tmp_path_factory):
    from scale_toolkit.retrieval.query import build_gallery_index

    root = tmp_path_factory.mktemp("odd")
    n = len(ODD_IDS)
    rng = np.random.default_rng(1)
    fs = FeatureStore.create(root / "o.zarr", video_ids=ODD_IDS, labels=np.array([0, 1, 0, 1, 0, 1], np.int32),
                             splits=np.ones((3, n), np.int8), class_names=["A", "B"], n_clips=3, feature_dim=8,
                             attrs={"backbone_name": "tiny", "view": {"name": "eval15", "clips": 3}}, rows_per_chunk=4)
    coords = np.tile(np.array([0, 0, 0, 1, 1, 1], np.float32), (n, 3, 1))
    fs.write_rows(np.arange(n), features=rng.standard_normal((n, 3, 8)).astype(np.float16), coords=coords)
    build_gallery_index(fs, root / "o.faiss", thumbs=False)
    return root / "o.faiss"


def test_any_id_can_be_shown_and_searched(odd_index):
    from urllib.parse import quote

    with local_client(create_app(odd_index)) as client:
        page = client.get("/")
        assert page.status_code == 200 and "<script>alert" not in page.text
        gallery = client.get("/api/gallery").json()
        shown = [item["video_id"] for item in gallery["items"]]
        assert gallery["total"] == len(ODD_IDS) and shown[0] == "caf\\xe9/v_\\xff\\xfe.avi" and shown[1:] == ODD_IDS[1:]
        for vid in shown:
            item = client.get("/api/items/" + quote(vid))
            assert item.status_code == 200 and item.json()["video_id"] == vid, (vid, item.text)
            res = client.post("/api/search", json={"video_id": vid, "limit": 10, "exclude": "none"})
            assert res.status_code == 200, (vid, res.text)
            assert res.json()["results"][0]["video_id"] == vid and res.json()["query"]["video_id"] == vid
            assert sorted(r["video_id"] for r in res.json()["results"]) == sorted(shown)
        assert client.get("/api/items", params={"q": "\\xff"}).json()["items"] == [shown[0]]
        assert client.get("/api/items/" + quote("caf\\xe9/nothing.avi")).status_code == 404


# ------------------------------------------------------------------ vectors
def test_a_vector_of_huge_or_tiny_numbers_ranks_like_its_direction(app, model_index):
    from scale_toolkit.retrieval.index import load_index

    index, _ = load_index(model_index["index"])
    vec = index.reconstruct(7).astype(np.float64)
    with local_client(app) as client:
        def ranking(v):
            res = client.post("/api/search", json={"vector": v.tolist(), "limit": 10, "exclude": "none"})
            assert res.status_code == 200, res.text
            return [(r["video_id"], round(r["similarity"], 5)) for r in res.json()["results"]]

        plain = ranking(vec)
        assert plain[0][1] == pytest.approx(1.0, abs=1e-4)
        assert ranking(vec * 1e200) == plain and ranking(vec * 1e-300) == plain


# ------------------------------------------------------------------ uploads
def _video(path: Path, width: int, height: int, frames: int) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "51"}
        frame = av.VideoFrame.from_ndarray(np.zeros((height * 3 // 2, width), np.uint8), format="yuv420p")
        for _ in range(frames):
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_an_upload_over_the_pixel_budget_is_refused_from_its_header(tmp_path, video_index):
    big = _video(tmp_path / "v_4k.mp4", 3840, 2160, 60)
    assert big.stat().st_size < 100_000  # tiny on disk, ~1.5 GB as decoded frames
    small = _video(tmp_path / "small.mp4", 160, 120, 30)
    with local_client(create_app(video_index["index"], max_upload_mpix=250)) as client:
        res = client.post("/api/search", files={"file": ("v_4k.mp4", big.read_bytes(), "video/mp4")})
        assert res.status_code == 422, res.text
        assert res.json()["error"] == ("v_4k.mp4: the video is 3840x2160 with 60 frames (498 million pixel-frames), "
                                       "over this server's limit of 250 million (--max-upload-mpix); send a shorter "
                                       "or smaller video")
        res = client.post("/api/search", files={"file": ("small.mp4", small.read_bytes(), "video/mp4")})
        assert res.status_code == 200, res.text  # the same worker goes on with the next upload
        assert res.json()["query"]["poster"].startswith("/api/uploads/")
        poster = client.get(res.json()["query"]["poster"])
        assert poster.status_code == 200 and poster.content[:3] == b"\xff\xd8\xff"


def test_one_uploads_timeout_never_fails_another(tmp_path):
    slow, quick = tmp_path / "slow.mp4", tmp_path / "quick.mp4"
    slow.write_text("3600")
    quick.write_text("1.5")
    before = _our_workers()
    embedder = FileEmbedder({}, 4, None, timeout_s=4)
    embedder.worker = _workers.slow_then_fine
    answers: dict = {}

    def upload(path):
        try:
            answers[path.name] = embedder.embed(path, path.name)[0].shape
        except RequestError as exc:
            answers[path.name] = str(exc)

    try:
        threads = [threading.Thread(target=upload, args=(p,)) for p in (slow, quick, quick.with_name("q2.mp4"))]
        quick.with_name("q2.mp4").write_text("3")  # waits for the quick one's worker, runs while the slow one is killed
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        embedder.close()
    assert answers["slow.mp4"] == "embedding slow.mp4 took longer than 4 s; send a shorter video"
    assert answers["quick.mp4"] == (1, 3, 4)
    assert answers["q2.mp4"] == (1, 3, 4)
    assert _our_workers() <= before  # the killed worker and the others are gone


def test_close_returns_once_every_worker_is_gone_even_one_still_starting(tmp_path, monkeypatch):
    """WorkerPool.close() (the server's stop) ends idle, running and still-starting workers and returns
    only once they are dead and reaped: a worker started after close() had looked, or one SIGKILLed and
    not yet reaped, used to outlive it."""
    import time

    from scale_toolkit.serve import workers

    hung = tmp_path / "hung.mp4"
    hung.write_text("3600")
    fine_job = (_workers.fine, ("x", {}, 4, None, 1.0), 120)

    idle_pool = workers.WorkerPool(1, wait_s=30)
    idle_pool.run(*fine_job)
    idle = idle_pool._idle[0].proc.pid
    idle_pool.close()
    assert not Path(f"/proc/{idle}").exists()  # not even a zombie

    pool = workers.WorkerPool(2, wait_s=30)
    pool.run(*fine_job)  # leaves one idle worker, which the running job below takes
    starting: list = []
    started = threading.Event()

    class SlowToStart(workers._Worker):
        def __init__(self) -> None:
            super().__init__()
            starting.append(self.proc.pid)
            started.set()
            time.sleep(0.5)  # the pool still sees this worker as starting while close() runs

    monkeypatch.setattr(workers, "_Worker", SlowToStart)
    outcomes: list = []

    def job() -> None:
        try:
            pool.run(_workers.slow_then_fine, (str(hung), {}, 4, None, 1.0), 120)
        except (workers.PoolClosed, workers.WorkerCrashed) as exc:
            outcomes.append(type(exc).__name__)

    running = threading.Thread(target=job)
    running.start()
    while not pool._running:
        time.sleep(0.01)
    running_pid = next(iter(pool._running)).proc.pid
    second = threading.Thread(target=job)
    second.start()
    assert started.wait(120)
    pool.close()
    assert [pid for pid in (running_pid, *starting) if Path(f"/proc/{pid}").exists()] == []
    for t in (running, second):
        t.join(30)
    assert sorted(outcomes) == ["PoolClosed", "PoolClosed"]  # both jobs answer "the server is stopping"


def _our_workers() -> set[str]:
    return {p for p in os.listdir("/proc") if p.isdigit() and _is_our_worker(p)}


def _is_our_worker(pid: str) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return f" {os.getpid()} " in stat.split(")")[1][:40] and "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


def test_a_bug_answers_one_line_500_and_logs_one_line(model_index, caplog):
    """The last line of defence: an exception in a route is one JSON line, the server goes on."""
    app = create_app(model_index["index"])

    def broken():
        raise ZeroDivisionError("a bug\nwith two lines")

    app.state.service.info = broken
    with caplog.at_level("ERROR"), local_client(app) as client:
        res = client.get("/api/index")
        assert res.status_code == 500 and res.json() == {"error": "internal error (ZeroDivisionError); the server goes on"}
        assert client.get("/healthz").status_code == 200
    assert "Traceback" not in caplog.text
    assert [r.getMessage() for r in caplog.records] == ["scale serve: internal error on GET /api/index: ZeroDivisionError: a bug"]


def test_stopping_the_server_ends_running_and_queued_uploads_at_once(tmp_path):
    """What a signal does (run_server closes the service first): uploads answer now, not at their time limit."""
    import time

    hung = tmp_path / "hung.mp4"
    hung.write_text("3600")
    embedder = FileEmbedder({}, 4, None, timeout_s=600, workers=1)
    embedder.worker = _workers.slow_then_fine
    answers: dict = {}

    def upload(name):
        try:
            embedder.embed(hung, name)
        except RequestError as exc:
            answers[name] = (exc.status, str(exc))

    threads = [threading.Thread(target=upload, args=(name,)) for name in ("running.mp4", "queued.mp4")]
    for t in threads:
        t.start()
        time.sleep(1.0)
    start = time.monotonic()
    embedder.close()
    for t in threads:
        t.join(30)
    assert time.monotonic() - start < 10
    assert answers == {"running.mp4": (503, "the server is stopping; running.mp4 was not embedded"),
                       "queued.mp4": (503, "the server is stopping; queued.mp4 was not embedded")}
