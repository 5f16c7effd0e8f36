"""The FastAPI app of `scale serve`: one page, its static files, a JSON API and gallery media.

Routes (every error is a 4xx with a one-line JSON body ``{"error": "..."}``):

* ``GET /``: the page (Jinja2, server-rendered index panel; static/app.js runs the queries).
* ``GET /healthz``: ``{"status": "ok", "videos": N}``.
* ``GET /api/index``: backbone, checkpoint, descriptor, index type, counts, classes, the token.
* ``GET /api/gallery?offset=0&limit=24&class=NAME``: a page of the gallery in index order, with the total.
* ``GET /api/items?q=TEXT&limit=20``: video ids containing TEXT (gallery first, then the store).
* ``GET /api/items/{id}``: one video: class, whether it is in the gallery, media URLs.
* ``POST /api/search``: JSON ``{"video_id": ID}`` or ``{"vector": [...]}``, or multipart with a
  ``file`` field (a video; the answer's ``query.token`` re-runs it as ``{"token": ...}``);
  options ``limit`` (1..200, default 20), ``offset``, ``class``, ``exclude`` (none|video|group,
  default video), ``class_name`` (the query's class, for vector/file queries); see search.py
  and schemas.py. Needs same-origin or the token (guard.py).
* ``GET /media/{id}/poster.jpg``, ``GET /media/{id}/preview.webp``: files written at build time.
* ``GET /api/uploads/{token}/poster.jpg``: the poster of an uploaded query video.

Everything the page needs is served here (no CDN, no web fonts): it works offline.
"""
from __future__ import annotations

import json
import os
import re
import socket
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..errors import ScaleError
from .guard import Guard, new_token
from .ids import shown
from .options import ServeOptions, check_max_upload
from .schemas import MAX_NAME_CHARS, parse_form_options, parse_json_search
from .search import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, RequestError, SearchService

HERE = Path(__file__).resolve().parent
DEFAULT_MAX_UPLOAD_MB = ServeOptions.max_upload_mb
MAX_JSON_BYTES = 1 << 20  # a 4096-d vector written out in full is ~100 KB
MAX_MEDIA_BYTES = 16 << 20  # a poster is ~10 KB, a preview ~100 KB
FORM_ROOM = 64 << 10  # the multipart form's own fields and boundaries, beside the file
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


class SafeJSON(JSONResponse):
    """JSON as ASCII: a string the API echoes can never fail to encode (lone surrogates included)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _one_line(text: Any) -> str:
    lines = shown(str(text)).strip().splitlines()
    return lines[0][:500] if lines else "error"


def _upload_bytes(max_upload_mb: float) -> int:
    return int(max_upload_mb * (1 << 20))


def _error(status: int, message: Any) -> JSONResponse:
    return SafeJSON({"error": _one_line(message)}, status_code=status)


def create_app(index_path: str | Path, *, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
               max_upload_mpix: float = ServeOptions.max_upload_mpix,
               device: str = ServeOptions.device, embed_timeout_s: float = ServeOptions.embed_timeout_s,
               host: str = ServeOptions.host, token: str | None = None, service: SearchService | None = None):
    """The app serving one index; opening the index (and its model and store) happens here, once.

    `host`: where the server listens; bound to loopback, it answers only requests addressed to a
    loopback name. `token`: the per-server token of state-changing requests (a fresh one when None).
    """
    check_max_upload(max_upload_mb)
    svc = service or SearchService(index_path, device=device, embed_timeout_s=embed_timeout_s,
                                   max_upload_mpix=max_upload_mpix)

    @asynccontextmanager
    async def lifespan(_app):
        try:
            yield
        finally:
            svc.close()

    app = FastAPI(title="scale serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan,
                  default_response_class=SafeJSON)
    app.state.service = svc
    app.state.token = token or new_token()
    max_upload = _upload_bytes(max_upload_mb)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    _add_error_handlers(app)
    _add_read_routes(app, svc, max_upload_mb)
    _add_search_route(app, svc, max_upload)
    app.add_middleware(Guard, token=app.state.token, loopback_only=ServeOptions(host=host).loopback_only(),
                       body_limit=lambda path: max_upload + FORM_ROOM if path == "/api/search" else 0)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every refusal answers its status with a one-line JSON body ``{"error": "..."}``."""

    @app.exception_handler(RequestError)
    async def _request_error(_req, exc: RequestError):
        return _error(exc.status, exc)

    @app.exception_handler(ScaleError)
    async def _scale_error(_req, exc: ScaleError):
        return _error(400, app.state.service.hide_paths(str(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req, exc: StarletteHTTPException):
        return _error(exc.status_code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_req, exc: RequestValidationError):
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return _error(422, f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid"))

    @app.exception_handler(ClientDisconnect)
    async def _gone(_req, _exc):  # nobody reads this answer; it must not become a logged error
        return _error(400, "the client went away before its request was read")


def _add_read_routes(app: FastAPI, svc: SearchService, max_upload_mb: float) -> None:
    """The page, the health check, the index's description, the gallery, video lookup and media."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    max_upload = _upload_bytes(max_upload_mb)

    @app.get("/", response_class=HTMLResponse)
    async def page(request: Request):
        return templates.TemplateResponse(request, "index.html", {"info": svc.info(), "max_upload_mb": max_upload_mb,
                                                                  "token": app.state.token})

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "videos": int(svc.oi.index.ntotal)}

    @app.get("/api/index")
    async def api_index():
        return {**svc.info(), "max_upload_bytes": max_upload, "token": app.state.token}

    @app.get("/api/gallery")
    async def api_gallery(limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
                          offset: int = Query(0, ge=0, le=MAX_OFFSET),
                          cls: str = Query("", alias="class", max_length=MAX_NAME_CHARS)):
        return await run_in_threadpool(svc.gallery, limit=limit, offset=offset, class_name=cls or None)

    @app.get("/api/items")
    async def api_find(q: str = Query("", max_length=1024), limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)):
        return {"items": await run_in_threadpool(svc.find, q, limit)}

    @app.get("/api/items/{video_id:path}")
    async def api_item(video_id: str):
        return svc.item(video_id)

    def media(video_id: str, kind: str, mime: str):
        data = read_media(svc.media_file(video_id, kind))
        return Response(data, media_type=mime, headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/media/{video_id:path}/poster.jpg")
    async def poster(video_id: str):
        return media(video_id, "poster", "image/jpeg")

    @app.get("/media/{video_id:path}/preview.webp")
    async def preview(video_id: str):
        return media(video_id, "preview", "image/webp")

    @app.get("/api/uploads/{token}/poster.jpg")
    async def upload_poster(token: str):
        return Response(svc.upload_poster(token), media_type="image/jpeg", headers={"Cache-Control": "no-store"})


def _add_search_route(app: FastAPI, svc: SearchService, max_upload: int) -> None:
    """``POST /api/search``: a JSON query (video id, vector or an earlier upload's token) or an uploaded file."""

    @app.post("/api/search")
    async def api_search(request: Request):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            return await _file_search(svc, request, max_upload)
        if ctype == "application/json":
            return await _json_search(svc, request)
        raise RequestError("POST /api/search takes application/json ({\"video_id\": ...} or {\"vector\": [...]}) "
                           "or multipart/form-data with a 'file' field", 415)


async def _file_search(svc: SearchService, request: Request, max_upload: int) -> dict:
    """A multipart upload: embed the video (worker process), remember it for paging, search."""
    try:
        form = await request.form(max_files=1, max_fields=16)
    except ClientDisconnect:
        raise
    except Exception as exc:  # noqa: BLE001  a malformed multipart body is the client's mistake
        raise RequestError(f"cannot read the multipart form: {_one_line(exc)}", 400) from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise RequestError("multipart search needs a 'file' field holding a video", 422)
        fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
        options = parse_form_options(fields)
        name = shown(Path(upload.filename or "upload").name or "upload")[:200]
        suffix = Path(name).suffix if _SAFE_SUFFIX.match(Path(name).suffix or "") else ".bin"
        with tempfile.TemporaryDirectory(prefix="scale-serve-") as tmp:
            path = Path(tmp) / f"query{suffix}"
            size = await run_in_threadpool(_save_upload, upload.file, path, max_upload)
            if size == 0:
                raise RequestError(f"{name} is empty (0 bytes)", 422)
            desc, query = await run_in_threadpool(svc.query_by_file, path, name, options.class_name)
    finally:
        await form.close()
    _, query = svc.remember(desc, query)
    return await run_in_threadpool(lambda: svc.search(desc, query, **options.as_kwargs()))


async def _json_search(svc: SearchService, request: Request) -> dict:
    """A JSON body naming exactly one of video_id, vector or token (an upload embedded before)."""
    length = int(request.headers.get("content-length", "0"))  # present and numeric: the guard checked it
    if length > MAX_JSON_BYTES:
        raise RequestError(f"the JSON body is {length / 2**20:.2f} MiB, over the limit of "
                           f"{MAX_JSON_BYTES / 2**20:.2f} MiB", 413)
    body = parse_json_search(await request.body())
    if body.video_id is not None:
        desc, query = await run_in_threadpool(svc.query_by_id, body.video_id)
    elif body.token is not None:  # an upload embedded before: another page or filter
        desc, query = svc.recall(body.token)
    else:
        desc, query = svc.query_by_vector(body.vector, body.class_name)
    return await run_in_threadpool(lambda: svc.search(desc, query, **body.as_kwargs()))


def read_media(path: Path) -> bytes:
    """A media file's bytes; the last part is never followed as a symlink (it was checked to be a
    file inside INDEX.media/, and may have been swapped since). Posters and previews are small."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_MEDIA_BYTES + 1)
    except OSError:
        raise RequestError(f"the media file {path.name} is gone; rebuild the index's media", 404) from None
    if len(data) > MAX_MEDIA_BYTES:
        raise RequestError(f"the media file {path.name} is larger than a poster or preview can be", 404)
    return data


def _save_upload(src, path: Path, limit: int) -> int:
    """Copy an uploaded file to `path` (in a worker thread: disk writes must not block the loop)."""
    size = 0
    with open(path, "wb") as f:
        while chunk := src.read(1 << 20):
            size += len(chunk)
            if size > limit:  # the Content-Length check passed, but the file part alone is too big
                raise RequestError(f"the upload is over the limit of {limit / 2**20:.2f} MiB", 413)
            f.write(chunk)
    return size


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket, or one clear error (port taken, bad host) before the server starts."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ScaleError(f"cannot resolve --host {host!r}: {getattr(exc, 'strerror', None) or exc}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        reason = "the port is in use" if exc.errno == 98 else (exc.strerror or str(exc))
        raise ScaleError(f"cannot listen on {host}:{port}: {reason}; choose another --port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run_server(app, sock: socket.socket) -> None:
    """Serve `app` on an already bound socket until SIGINT/SIGTERM (uvicorn handles both, then re-raises).

    At the signal the upload workers are ended first: an upload being embedded then answers at
    once (it could take minutes), so the graceful stop never runs out of time.
    """
    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            app.state.service.close()  # kills worker processes; never blocks on the event loop
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    _Server(config).run(sockets=[sock])
