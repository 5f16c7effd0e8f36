"""The FastAPI app of `scale serve`: one page, its static files, a JSON API and gallery media.

Routes (every error is a 4xx/5xx with a one-line JSON body ``{"error": "..."}``):

* ``GET /``: the page (Jinja2, server-rendered index panel; static/app.js runs the queries).
* ``GET /healthz``: ``{"status": "ok", "videos": N}``.
* ``GET /api/index``: backbone, checkpoint sha256, descriptor, index type, counts, classes.
* ``GET /api/items?q=TEXT&limit=20``: video ids containing TEXT (gallery first, then the store).
* ``GET /api/items/{id}``: one video: class, whether it is in the gallery, media URLs.
* ``POST /api/search``: JSON ``{"video_id": ID}`` or ``{"vector": [...]}``, or multipart with a
  ``file`` field (a video; the answer's ``query.token`` re-runs it as ``{"token": ...}``);
  options ``limit`` (1..200, default 20), ``offset``, ``class``, ``exclude`` (none|video|group,
  default video), ``class_name`` (the query's class, for vector/file queries); see search.py.
* ``GET /media/{id}/poster.jpg``, ``GET /media/{id}/preview.webp``: files written at build time.

Everything the page needs is served here (no CDN, no web fonts): it works offline.
"""
from __future__ import annotations

import json
import re
import socket
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ScaleError
from .options import ServeOptions, check_max_upload
from .search import DEFAULT_LIMIT, MAX_LIMIT, RequestError, SearchService

HERE = Path(__file__).resolve().parent
DEFAULT_MAX_UPLOAD_MB = ServeOptions.max_upload_mb
MAX_JSON_BYTES = 8 << 20  # a 768-d vector is ~15 KB; this bounds what a JSON body may make us parse
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


def _one_line(text: Any) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else "error"


def _upload_bytes(max_upload_mb: float) -> int:
    return int(max_upload_mb * (1 << 20))


def _error(status: int, message: Any) -> JSONResponse:
    return JSONResponse({"error": _one_line(message)}, status_code=status)


def create_app(index_path: str | Path, *, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
               device: str = ServeOptions.device, embed_timeout_s: float = ServeOptions.embed_timeout_s,
               service: SearchService | None = None):
    """The app serving one index; opening the index (and its model and store) happens here, once."""
    check_max_upload(max_upload_mb)
    svc = service or SearchService(index_path, device=device, embed_timeout_s=embed_timeout_s)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        svc.close()

    app = FastAPI(title="scale serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.service = svc
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    _add_error_handlers(app)
    _add_read_routes(app, svc, max_upload_mb)
    _add_search_route(app, svc, _upload_bytes(max_upload_mb))
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error answers its status with a one-line JSON body ``{"error": "..."}``."""

    @app.exception_handler(RequestError)
    async def _request_error(_req, exc: RequestError):
        return _error(exc.status, exc)

    @app.exception_handler(ScaleError)
    async def _scale_error(_req, exc: ScaleError):
        return _error(400, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req, exc: StarletteHTTPException):
        return _error(exc.status_code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_req, exc: RequestValidationError):
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid"))

    @app.exception_handler(Exception)
    async def _internal_error(_req, exc: Exception):  # a bug answers 500 in one line; the server goes on
        return _error(500, f"internal error ({type(exc).__name__}): {_one_line(exc)}")


def _add_read_routes(app: FastAPI, svc: SearchService, max_upload_mb: float) -> None:
    """The page, the health check, the index's description, video lookup and gallery media."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    max_upload = _upload_bytes(max_upload_mb)

    @app.get("/", response_class=HTMLResponse)
    async def page(request: Request):
        return templates.TemplateResponse(request, "index.html", {"info": svc.info(), "max_upload_mb": max_upload_mb})

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "videos": int(svc.oi.index.ntotal)}

    @app.get("/api/index")
    async def api_index():
        return {**svc.info(), "max_upload_bytes": max_upload}

    @app.get("/api/items")
    async def api_find(q: str = "", limit: int = DEFAULT_LIMIT):
        if not 1 <= limit <= MAX_LIMIT:
            raise RequestError(f"limit must be in 1..{MAX_LIMIT}, got {limit}", 422)
        return {"items": await run_in_threadpool(svc.find, q, limit)}

    @app.get("/api/items/{video_id:path}")
    async def api_item(video_id: str):
        return svc.item(video_id)

    def media(video_id: str, kind: str, mime: str):
        return FileResponse(svc.media_file(video_id, kind), media_type=mime,
                            headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/media/{video_id:path}/poster.jpg")
    async def poster(video_id: str):
        return media(video_id, "poster", "image/jpeg")

    @app.get("/media/{video_id:path}/preview.webp")
    async def preview(video_id: str):
        return media(video_id, "preview", "image/webp")


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


def _int(value: Any, name: str, default: int) -> int:
    """An integer search option from JSON or a form field (absent or empty: `default`)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise RequestError(f"{name} must be an integer, got {value!r}", 422)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise RequestError(f"{name} must be an integer, got {value!r}", 422) from None


def _search_options(fields: dict) -> dict:
    """The paging, class filter and exclusion of a search, as ``SearchService.search`` takes them."""
    exclude = fields.get("exclude") or "video"
    cls = fields.get("class") or None
    for name, value in (("exclude", exclude), ("class", cls)):
        if value is not None and not isinstance(value, str):
            raise RequestError(f"{name} must be a string, got {value!r}", 422)
    return {"limit": _int(fields.get("limit"), "limit", DEFAULT_LIMIT), "offset": _int(fields.get("offset"), "offset", 0),
            "class_name": cls, "exclude": exclude}


def _check_content_length(request: Request, limit: int, what: str) -> None:
    """Refuse a body without a length, or longer than `limit` bytes, before reading it."""
    length = request.headers.get("content-length")
    if length is None:
        raise RequestError(f"send {what} with a Content-Length header", 411)
    try:
        n = int(length)
    except ValueError:
        raise RequestError("bad Content-Length header", 400) from None
    if n > limit:
        raise RequestError(f"{what} is {n / 2**20:.2f} MiB, over the limit of {limit / 2**20:.2f} MiB", 413)


async def _file_search(svc: SearchService, request: Request, max_upload: int) -> dict:
    """A multipart upload: embed the video (worker process), remember it for paging, search."""
    _check_content_length(request, max_upload + (64 << 10), "the upload")  # + room for the form's own fields
    try:
        form = await request.form(max_files=1, max_fields=16)
    except Exception as exc:  # noqa: BLE001  a malformed multipart body is the client's mistake
        raise RequestError(f"cannot read the multipart form: {_one_line(exc)}", 400) from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise RequestError("multipart search needs a 'file' field holding a video", 422)
    fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
    options = _search_options(fields)
    name = Path(upload.filename or "upload").name or "upload"
    suffix = Path(name).suffix if _SAFE_SUFFIX.match(Path(name).suffix or "") else ".bin"
    with tempfile.TemporaryDirectory(prefix="scale-serve-") as tmp:
        path = Path(tmp) / f"query{suffix}"
        size = await run_in_threadpool(_save_upload, upload.file, path, max_upload)
        await upload.close()
        if size == 0:
            raise RequestError(f"{name} is empty (0 bytes)", 422)
        desc, query = await run_in_threadpool(svc.query_by_file, path, name, fields.get("class_name") or None)
    query = {**query, "token": svc.remember(desc, query)}
    return await run_in_threadpool(lambda: svc.search(desc, query, **options))


async def _json_search(svc: SearchService, request: Request) -> dict:
    """A JSON body naming exactly one of video_id, vector or token (an upload embedded before)."""
    _check_content_length(request, MAX_JSON_BYTES, "the JSON body")
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"the body is not valid JSON: {_one_line(exc)}", 400) from None
    if not isinstance(body, dict):
        raise RequestError("the JSON body must be an object, e.g. {\"video_id\": \"...\"}", 422)
    given = [k for k in ("video_id", "vector", "token") if body.get(k) is not None]
    if len(given) != 1:
        raise RequestError("give exactly one of video_id, vector or token (or upload a file as multipart 'file')", 422)
    options = _search_options(body)
    cls = body.get("class_name")
    if cls is not None and not isinstance(cls, str):
        raise RequestError(f"class_name must be a string, got {cls!r}", 422)
    if given == ["video_id"]:
        desc, query = await run_in_threadpool(svc.query_by_id, body["video_id"])
    elif given == ["token"]:  # an upload embedded before: another page or filter
        desc, query = svc.recall(body["token"])
        query = {**query, "token": body["token"]}
    else:
        desc, query = svc.query_by_vector(body["vector"], cls)
    return await run_in_threadpool(lambda: svc.search(desc, query, **options))


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
    except socket.gaierror as exc:
        raise ScaleError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
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
    """Serve `app` on an already bound socket until SIGINT/SIGTERM (uvicorn handles both)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])
