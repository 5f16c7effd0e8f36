"""Hostile requests over every route, generated from a seed: no answer is a 5xx, every refusal
is one line of JSON, and nothing is logged as a traceback. The server is the in-process app, so
a failure names the request that caused it (seed and index)."""
from __future__ import annotations

import json
import logging
import random
from urllib.parse import quote

import pytest

from scale_toolkit.serve.app import create_app

from .conftest import local_client

KEYS = ["video_id", "vector", "token", "limit", "offset", "class", "exclude", "class_name", "x", "", "__proto__"]
ODD_TEXT = ["", " ", "\x00", "\udc80", "\ud800", "é", "../../etc/passwd", "/etc/passwd", "%2e%2e", "\\x41", "<b>",
            "[/red]", "a" * 5000, "\n\r\t", "null", "1e999", "NaN", "0x10", "-0", "class0", "none", "group"]
ODD_NUMBERS = ["1e999", "-1e999", "NaN", "Infinity", "-Infinity", "1e200", "-1e308", "5e-324", "1.5", "-1", "0",
               "18446744073709551616", "1" * 400, "true", "false", "null", "[]", "{}"]


def _value(rng: random.Random, depth: int = 0) -> str:
    """Raw JSON text (so NaN, 1e999 and huge integers reach the parser as a client can send them)."""
    pick = rng.random()
    if pick < 0.3:
        return rng.choice(ODD_NUMBERS)
    if pick < 0.55:
        return json.dumps(rng.choice(ODD_TEXT))
    if pick < 0.7 and depth < 6:
        return "[" + ",".join(_value(rng, depth + 1) for _ in range(rng.randint(0, 6))) + "]"
    if pick < 0.8 and depth < 6:
        return "{" + ",".join(f"{json.dumps(rng.choice(KEYS))}:{_value(rng, depth + 1)}" for _ in range(rng.randint(0, 4))) + "}"
    if pick < 0.9:
        return "[" + ",".join(rng.choice(["0.5", "1e200", "1e-300", "-3", "1e999", "NaN"]) for _ in range(32)) + "]"
    return "[" * rng.randint(5, 3000) + "]" * rng.randint(0, 3000)


def _json_body(rng: random.Random) -> bytes:
    if rng.random() < 0.1:
        return rng.randbytes(rng.randint(0, 300))
    fields = [f"{json.dumps(rng.choice(KEYS))}:{_value(rng)}" for _ in range(rng.randint(0, 5))]
    if rng.random() < 0.5:
        fields.append(f'"video_id":{json.dumps(rng.choice(["class0/v_000.avi", "class1/v_001.avi"]))}')
    return ("{" + ",".join(fields) + "}").encode("utf-8", "surrogatepass")


def _multipart(rng: random.Random) -> tuple[bytes, str]:
    boundary = rng.choice(["x", "----b", "", "a" * 80, "\"q\"", "é".encode().decode("latin-1")])
    parts = []
    for _ in range(rng.randint(0, 4)):
        name = rng.choice(["file", "limit", "class", "offset", "class_name", "other", "file"])
        filename = rng.choice(["", '; filename="a.mp4"', '; filename="../../x.avi"', '; filename="\\u0000.mp4"',
                               '; filename="' + "z" * 300 + '.mkv"'])
        body = rng.choice([b"", b"1e999", b"-5", rng.randbytes(200), b"\x00\x00\x00\x18ftypmp42" + rng.randbytes(100)])
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n\r\n'.encode("utf-8", "replace")
                     + body + b"\r\n")
    tail = rng.choice([f"--{boundary}--\r\n".encode("utf-8", "replace"), b"", b"--"])
    return b"".join(parts) + tail, f"multipart/form-data; boundary={boundary}"


def _path(rng: random.Random) -> str:
    odd = rng.choice(["%FF%FE", "%00", "..%2F..%2Fetc%2Fpasswd", "%ED%A0%80", "class0/v_000.avi", "a%2Fb", "%", "x" * 3000,
                      "\\x41", "%5Cxff"])
    limit = rng.choice(["1", "200", "0", "-1", "201", "1e999", "NaN"])
    offset = rng.choice(["0", "1e999", "-1", "99999999999999999999", "x"])
    cls = quote(rng.choice(ODD_TEXT)[:50].encode("utf-8", "surrogatepass"))
    return rng.choice([f"/api/items/{odd}", f"/media/{odd}/poster.jpg", f"/media/{odd}/preview.webp",
                       f"/api/uploads/{odd}/poster.jpg", f"/api/items?q={odd}&limit={limit}",
                       f"/api/gallery?offset={offset}&limit={limit}&class={cls}", "/static/" + odd, "/" + odd])


@pytest.mark.parametrize("seed", [0, 1])
def test_hostile_requests_never_answer_5xx(model_index, caplog, seed):
    rng = random.Random(seed)
    app = create_app(model_index["index"], max_upload_mb=0.5, embed_timeout_s=30)
    failures = []
    with caplog.at_level(logging.DEBUG), local_client(app) as client:
        for i in range(250):
            kind = rng.random()
            if kind < 0.45:
                res = client.post("/api/search", content=_json_body(rng), headers={"content-type": "application/json"})
            elif kind < 0.6:
                body, ctype = _multipart(rng)
                res = client.post("/api/search", content=body, headers={"content-type": ctype.encode("latin-1")})
            elif kind < 0.7:
                res = client.request(rng.choice(["PUT", "DELETE", "PATCH", "POST", "OPTIONS"]), _path(rng),
                                     content=rng.randbytes(rng.randint(0, 50)))
            else:
                res = client.get(_path(rng))
            text = res.text
            if res.status_code >= 500:
                failures.append((i, res.status_code, text[:200]))
            elif res.status_code >= 400 and res.headers.get("content-type", "").startswith("application/json"):
                error = res.json().get("error", "")
                if not error or "\n" in error or "Traceback" in error:
                    failures.append((i, res.status_code, text[:200]))
        assert client.get("/healthz").json()["status"] == "ok"
    assert not failures, failures[:5]
    assert "Traceback" not in caplog.text and "internal error" not in caplog.text, caplog.text[-2000:]
