"""The JSON API of `scale serve` through FastAPI's TestClient: same answers as `scale retrieve`,
paging, filters, exclusion, P@k, uploads, and a one-line 4xx for every bad request."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from scale_toolkit.serve.app import create_app
from scale_toolkit.serve.search import group_key, infer_class
from scale_toolkit.store import FeatureStore

from .conftest import local_client


@pytest.fixture(scope="module")
def model_client(model_index):
    app = create_app(model_index["index"])
    with local_client(app) as client:
        yield client


def _cli_query(run_cli, tmp_path, index, query, top, *extra):
    out = tmp_path / "q.json"
    code, _, err = run_cli("retrieve", "--index", index, "--query", query, "--top", str(top), "--json", out, *extra)
    assert code == 0, err
    return json.loads(out.read_text())["query"]


def test_index_panel_fields_and_health(model_client, model_index):
    assert model_client.get("/healthz").json() == {"status": "ok", "videos": 40}
    info = model_client.get("/api/index").json()
    assert info["backbone"] == "tiny" and info["descriptor"] == "set" and info["index_type"] == "flat"
    assert info["n_videos"] == 40 and info["dim"] == 32 and info["class_names"] == [f"class{c}" for c in range(4)]
    assert len(info["model"]["fingerprint"]) == 16 and info["media"] == 0
    page = model_client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert ">set" in page.text and ">40<" in page.text and "/static/app.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing fetched from elsewhere
    for asset in ("/static/app.js", "/static/app.css", "/static/placeholder.svg"):
        assert model_client.get(asset).status_code == 200


@pytest.mark.parametrize("row", [0, 17])
def test_search_by_id_equals_cli_retrieve(model_client, model_index, run_cli, tmp_path, row):
    vid = model_index["video_ids"][row]
    cli = _cli_query(run_cli, tmp_path, model_index["index"], vid, 6)
    api = model_client.post("/api/search", json={"video_id": vid, "limit": 6}).json()
    assert [r["video_id"] for r in api["results"]] == [r["video_id"] for r in cli["results"]]
    assert [r["similarity"] for r in api["results"]] == pytest.approx([r["similarity"] for r in cli["results"]], abs=1e-6)
    assert [r["rank"] for r in api["results"]] == list(range(1, 7))
    assert api["query"]["class_name"] == cli["query"]["class_name"] and vid not in [r["video_id"] for r in api["results"]]
    # --include-self is exclude "none": the query itself first, similarity 1
    cli = _cli_query(run_cli, tmp_path, model_index["index"], vid, 4, "--include-self")
    api = model_client.post("/api/search", json={"video_id": vid, "limit": 4, "exclude": "none"}).json()
    assert [r["video_id"] for r in api["results"]] == [r["video_id"] for r in cli["results"]]
    assert api["results"][0]["video_id"] == vid and api["results"][0]["similarity"] == pytest.approx(1.0, abs=1e-5)


def test_search_by_vector_ranks_like_search_by_id(model_client, model_index):
    from scale_toolkit.retrieval.index import load_index

    index, meta = load_index(model_index["index"])
    row = 5
    vec = index.reconstruct(row) * 3.0  # any scale: the vector is L2-normalised
    by_vec = model_client.post("/api/search", json={"vector": vec.tolist(), "limit": 10, "exclude": "none"}).json()
    by_id = model_client.post("/api/search", json={"video_id": meta["video_ids"][row], "limit": 10,
                                                    "exclude": "none"}).json()
    assert [r["video_id"] for r in by_vec["results"]] == [r["video_id"] for r in by_id["results"]]
    assert by_vec["query"]["kind"] == "vector" and by_vec["precision"] is None
    labelled = model_client.post("/api/search", json={"vector": vec.tolist(), "class_name": "class1"}).json()
    assert labelled["query"]["label"] == 1 and labelled["precision"] is not None


def test_pages_class_filter_and_precision(model_client, model_index):
    vid = model_index["video_ids"][2]
    whole = model_client.post("/api/search", json={"video_id": vid, "limit": 39}).json()
    assert whole["total"] == 39 and not whole["has_more"] and len(whole["results"]) == 39
    pages, offset = [], 0
    while True:
        page = model_client.post("/api/search", json={"video_id": vid, "limit": 7, "offset": offset}).json()
        pages += page["results"]
        offset += 7
        if not page["has_more"]:
            break
    assert [r["video_id"] for r in pages] == [r["video_id"] for r in whole["results"]]
    q_label = whole["query"]["label"]
    first10 = model_client.post("/api/search", json={"video_id": vid, "limit": 10}).json()
    assert first10["precision"] == {"k": 10, "value": pytest.approx(sum(r["match"] for r in first10["results"]) / 10),
                                    "of_class": whole["query"]["class_name"], "class_filter_applied": False}
    # under a class filter P@k still counts the unfiltered first k, and says so
    filtered = model_client.post("/api/search", json={"video_id": vid, "limit": 10, "class": "class3"}).json()
    assert filtered["precision"] == first10["precision"]
    assert all(r["match"] == (r["label"] == q_label) for r in whole["results"])
    for cls in ("class0", "class3"):
        got = model_client.post("/api/search", json={"video_id": vid, "limit": 50, "class": cls}).json()
        expect = [(r["rank"], r["video_id"]) for r in whole["results"] if r["class_name"] == cls]
        assert [(r["rank"], r["video_id"]) for r in got["results"]] == expect and expect
        assert got["total"] == len(expect)


def _ucf_style_index(tmp_path):
    """12 videos named like UCF101 (2 classes x 3 groups x 2 clips); clips of a group are near each other."""
    from scale_toolkit.retrieval.query import build_gallery_index

    rng = np.random.default_rng(0)
    ids, labels, feats = [], [], []
    for c, cls in enumerate(("Alpha", "Beta")):
        for g in (1, 2, 3):
            centre = rng.standard_normal(8)
            for clip in (1, 2):
                ids.append(f"{cls}/v_{cls}_g{g:02d}_c{clip:02d}.avi")
                labels.append(c)
                feats.append(centre + 0.05 * rng.standard_normal((3, 8)))
    n = len(ids)
    fs = FeatureStore.create(tmp_path / "u.zarr", video_ids=ids, labels=np.array(labels, np.int32),
                             splits=np.ones((3, n), np.int8), class_names=["Alpha", "Beta"], n_clips=3, feature_dim=8,
                             attrs={"backbone_name": "tiny", "view": {"name": "eval15", "clips": 3}}, rows_per_chunk=4)
    coords = np.tile(np.array([0, 0, 0, 1, 1, 1], np.float32), (n, 3, 1))
    fs.write_rows(np.arange(n), features=np.array(feats, np.float16), coords=coords)
    build_gallery_index(fs, tmp_path / "u.faiss", thumbs=False)
    return tmp_path / "u.faiss", ids


def test_exclude_same_video_or_group(tmp_path):
    index, ids = _ucf_style_index(tmp_path)
    with local_client(create_app(index)) as client:
        def found(exclude):
            res = client.post("/api/search", json={"video_id": ids[0], "limit": 20, "exclude": exclude}).json()
            return [r["video_id"] for r in res["results"]], res["excluded"]

        none, n0 = found("none")
        video, n1 = found("video")
        group, n2 = found("group")
    assert none[0] == ids[0] and len(none) == 12 and n0 == 0
    assert ids[0] not in video and video[0] == ids[1] and n1 == 1  # the other clip of its group is nearest
    assert ids[0] not in group and ids[1] not in group and len(group) == 10 and n2 == 2
    assert group == [v for v in none if v not in ids[:2]]


def test_names_groups_and_classes():
    assert group_key("HandstandPushups/v_HandStandPushups_g05_c02.avi") == "handstandpushups_g05"
    assert group_key("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi") == "april_09_brush_hair_u_nm_np1_ba_goo_0"
    assert infer_class("v_Shotput_g05_c02.avi", ["ApplyEyeMakeup", "Shotput"]) == 1
    assert infer_class("holiday.mp4", ["ApplyEyeMakeup", "Shotput"]) is None


def test_item_and_media_routes(video_index):
    with local_client(create_app(video_index["index"])) as client:
        vid = video_index["ids"][4]
        item = client.get(f"/api/items/{vid}").json()
        assert item["in_gallery"] and item["class_name"] == video_index["class_names"][video_index["labels"][4]]
        poster = client.get(item["poster"])
        assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
        assert poster.content[:3] == b"\xff\xd8\xff"
        preview = client.get(item["preview"])
        assert preview.status_code == 200 and preview.content[:4] == b"RIFF" and preview.content[8:12] == b"WEBP"
        found = client.get("/api/items", params={"q": vid[-8:]}).json()["items"]
        assert vid in found


def test_upload_of_a_gallery_video_finds_itself(video_index):
    vid = video_index["ids"][7]
    with local_client(create_app(video_index["index"])) as client:
        with open(video_index["videos"] / vid, "rb") as f:
            res = client.post("/api/search", files={"file": ("clip.avi", f, "video/x-msvideo")},
                              data={"limit": "5", "exclude": "none", "class_name": video_index["class_names"][0]})
        assert res.status_code == 200, res.text
        res = res.json()
        assert res["results"][0]["video_id"] == vid and res["results"][0]["similarity"] > 0.999
        assert res["query"]["kind"] == "file" and res["query"]["class_name"] == video_index["class_names"][0]
        again = client.post("/api/search", json={"token": res["query"]["token"], "limit": 5, "exclude": "none"}).json()
        assert [r["video_id"] for r in again["results"]] == [r["video_id"] for r in res["results"]]


def test_upload_of_a_real_clip_equals_cli_retrieve(real_index, run_cli, tmp_path):
    clip = next(real_index["root"].glob("Shotput/*.avi"))
    cli = _cli_query(run_cli, tmp_path, real_index["index"], clip, 3)
    assert real_index["media"] and not real_index["media"]["failed"]
    with local_client(create_app(real_index["index"])) as client:
        with open(clip, "rb") as f:
            res = client.post("/api/search", files={"file": (clip.name, f, "video/x-msvideo")},
                              data={"limit": "3", "exclude": "none"}).json()
    assert [r["video_id"] for r in res["results"]] == [r["video_id"] for r in cli["results"]]
    assert [r["similarity"] for r in res["results"]] == pytest.approx([r["similarity"] for r in cli["results"]], abs=1e-5)
    assert res["results"][0]["video_id"] == "Shotput/" + clip.name  # the gallery copy of the same clip
    assert res["query"]["class_name"] == "Shotput" and res["query"]["class_from"] == "file name"
    assert res["precision"]["k"] == 3 and res["precision"]["value"] == pytest.approx(1 / 3)
    poster = res["query"]["poster"]  # the query card shows the uploaded video's middle frame
    with local_client(create_app(real_index["index"])) as other:  # another server does not know this upload
        assert other.get(poster).status_code == 404


# ------------------------------------------------------------------ bad requests
def _bad_requests(vid: str, dim: int):
    nan = json.dumps({"vector": [math.nan] * dim})
    return [
        ("unknown video id", "post", "/api/search", {"json": {"video_id": "no/such.avi"}}, 404, "unknown video id"),
        ("unknown item", "get", "/api/items/no/such.avi", {}, 404, "unknown video id"),
        ("poster of unknown id", "get", "/media/no/such.avi/poster.jpg", {}, 404, "unknown gallery video"),
        ("vector too short", "post", "/api/search", {"json": {"vector": [0.1] * (dim - 1)}}, 422, f"{dim}-d"),
        ("vector of strings", "post", "/api/search", {"json": {"vector": ["a"] * dim}}, 422, "vector"),
        ("vector NaN", "post", "/api/search", {"content": nan, "headers": {"content-type": "application/json"}}, 422, "finite"),
        ("vector 1e999", "post", "/api/search", {"content": '{"vector": [1e999' + ', 1' * (dim - 1) + ']}', "headers": {"content-type": "application/json"}}, 422, "finite"),
        ("vector nested", "post", "/api/search", {"json": {"vector": [[1.0]] * dim}}, 422, "vector"),
        ("vector of booleans", "post", "/api/search", {"json": {"vector": [True] * dim}}, 422, "vector"),
        ("vector far too long", "post", "/api/search", {"json": {"vector": [1.0] * 70_000}}, 422, "vector"),
        ("offset 1e999", "post", "/api/search", {"content": '{"video_id": "%s", "offset": 1e999}' % vid, "headers": {"content-type": "application/json"}}, 422, "offset"),
        ("offset huge", "post", "/api/search", {"json": {"video_id": vid, "offset": 10**30}}, 422, "offset"),
        ("limit fraction", "post", "/api/search", {"json": {"video_id": vid, "limit": 1.5}}, 422, "limit"),
        ("limit boolean", "post", "/api/search", {"json": {"video_id": vid, "limit": True}}, 422, "limit"),
        ("deep nesting", "post", "/api/search", {"content": '{"video_id": ' + "[" * 100_000 + "]" * 100_000 + "}", "headers": {"content-type": "application/json"}}, 422, "deeper"),
        ("unknown field", "post", "/api/search", {"json": {"video_id": vid, "colour": "red"}}, 422, "colour"),
        ("id not a string", "post", "/api/search", {"json": {"video_id": 7}}, 422, "video_id"),
        ("id lone surrogate", "post", "/api/search", {"content": '{"video_id": "a\\udc80b"}', "headers": {"content-type": "application/json"}}, 422, "video_id"),
        ("class_name not text", "post", "/api/search", {"json": {"vector": [1.0] * dim, "class_name": {"a": 1}}}, 422, "class_name"),
        ("bad token", "post", "/api/search", {"json": {"token": "../../etc"}}, 422, "token"),
        ("JSON body too large", "post", "/api/search", {"content": b" " * (2 << 20), "headers": {"content-type": "application/json"}}, 413, "MiB"),
        ("not UTF-8", "post", "/api/search", {"content": b'{"video_id": "\xff"}', "headers": {"content-type": "application/json"}}, 400, "JSON"),
        ("gallery offset", "get", "/api/gallery?offset=1e999", {}, 422, "offset"),
        ("gallery class", "get", "/api/gallery?class=cats", {}, 422, "unknown class"),
        ("upload poster unknown", "get", "/api/uploads/0123456789abcdef/poster.jpg", {}, 404, "poster"),
        ("zero vector", "post", "/api/search", {"json": {"vector": [0.0] * dim}}, 422, "zeros"),
        ("id and vector", "post", "/api/search", {"json": {"video_id": vid, "vector": [1.0] * dim}}, 422, "exactly one"),
        ("nothing", "post", "/api/search", {"json": {"limit": 3}}, 422, "exactly one"),
        ("not JSON", "post", "/api/search", {"content": b"{oops", "headers": {"content-type": "application/json"}}, 400, "JSON"),
        ("JSON list", "post", "/api/search", {"json": [vid]}, 422, "object"),
        ("form urlencoded", "post", "/api/search", {"data": {"video_id": vid}}, 415, "multipart"),
        ("limit 0", "post", "/api/search", {"json": {"video_id": vid, "limit": 0}}, 422, "limit"),
        ("limit huge", "post", "/api/search", {"json": {"video_id": vid, "limit": 10_000}}, 422, "limit"),
        ("limit text", "post", "/api/search", {"json": {"video_id": vid, "limit": "ten"}}, 422, "limit"),
        ("offset negative", "post", "/api/search", {"json": {"video_id": vid, "offset": -1}}, 422, "offset"),
        ("unknown class", "post", "/api/search", {"json": {"video_id": vid, "class": "cats"}}, 422, "unknown class"),
        ("bad exclude", "post", "/api/search", {"json": {"video_id": vid, "exclude": "all"}}, 422, "exclude"),
        ("unknown token", "post", "/api/search", {"json": {"token": "deadbeefdeadbeef"}}, 404, "token"),
        ("not a video", "post", "/api/search", {"files": {"file": ("notes.mp4", b"just text, no video", "video/mp4")}}, 422, "notes.mp4: not a video the decoder can read (Invalid data found when processing input)"),
        ("empty upload", "post", "/api/search", {"files": {"file": ("e.mp4", b"", "video/mp4")}}, 422, "empty"),
        ("form without file", "post", "/api/search", {"files": {"other": ("x.mp4", b"123", "video/mp4")}}, 422, "'file'"),
        ("upload too large", "post", "/api/search", {"files": {"file": ("big.mp4", b"\0" * 300_000, "video/mp4")}}, 413, "limit"),
        ("upload far too large", "post", "/api/search", {"files": {"file": ("big.mp4", b"\0" * 400_000, "video/mp4")}}, 413, "0.38 MiB"),
        ("chunked upload", "post", "/api/search", {"content": iter([b"--x\r\n"]),
                                                    "headers": {"content-type": "multipart/form-data; boundary=x"}},
         411, "Content-Length"),
        ("limit in form", "post", "/api/search", {"files": {"file": ("a.mp4", b"1", "video/mp4")}, "data": {"limit": "x"}}, 422, "limit"),
        ("unknown route", "get", "/api/nothing", {}, 404, "Not Found"),
        ("wrong method", "get", "/api/search", {}, 405, "Method Not Allowed"),
        ("items limit", "get", "/api/items?limit=0", {}, 422, "limit"),
        ("items limit text", "get", "/api/items?limit=x", {}, 422, "limit"),
    ]


def test_every_bad_request_is_a_one_line_4xx_and_the_server_goes_on(video_index, model_client, model_index):
    res = model_client.get(f"/media/{model_index['video_ids'][0]}/poster.jpg")  # index built without media
    assert res.status_code == 404 and "--thumbs" in res.json()["error"]
    app = create_app(video_index["index"], max_upload_mb=0.25)
    with local_client(app) as client:
        cases = _bad_requests(video_index["ids"][0], 64)
        for name, method, url, kwargs, status, needle in cases:
            res = getattr(client, method)(url, **kwargs)
            assert res.status_code == status, (name, res.status_code, res.text)
            body = res.json()
            assert set(body) == {"error"} and needle in body["error"], (name, body)
            assert "\n" not in body["error"] and "Traceback" not in body["error"], name
            assert "Errno" not in body["error"] and "()" not in body["error"] and "/tmp" not in body["error"], (name, body)
        assert client.get("/healthz").json()["status"] == "ok"
        good = client.post("/api/search", json={"video_id": video_index["ids"][0]})
        assert good.status_code == 200 and len(good.json()["results"]) == len(video_index["ids"]) - 1


def test_file_queries_off_when_the_store_cannot_embed(tmp_path):
    """An index of imported features (no backbone recorded) answers uploads with a clear 422."""
    from scale_toolkit.retrieval.query import build_gallery_index

    from ..retrieval.helpers import make_store

    fs, _ = make_store(tmp_path / "s.zarr", n=12, attrs={"view": {"name": "eval15", "clips": 5}})
    build_gallery_index(fs, tmp_path / "g.faiss", thumbs=False)
    with local_client(create_app(tmp_path / "g.faiss")) as client:
        assert client.get("/api/index").json()["file_queries"] is False
        res = client.post("/api/search", files={"file": ("a.mp4", b"123", "video/mp4")})
        assert res.status_code == 422 and "cannot embed video files" in res.json()["error"]
        assert "disabled" in client.get("/").text
