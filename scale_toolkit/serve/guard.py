"""What every request must pass before a route sees it: `scale serve` trusts no client, not even on loopback.

* **Host**: a server bound to loopback answers only requests addressed to a loopback name
  (localhost, 127.0.0.1, [::1]); a web page that rebinds its own DNS name to 127.0.0.1 gets 421.
* **Cross-site requests**: any other web page the user opens can make the browser POST here
  (a fetch or a plain HTML form). A request that changes state (every method but GET/HEAD/OPTIONS)
  must show it comes from this server's own page: ``Sec-Fetch-Site: same-origin``, an ``Origin``
  equal to the server's own, or the per-server token (header ``X-Scale-Token``) that the page
  and ``GET /api/index`` hold. A cross-site or foreign-origin request is refused (403) even with
  a token; a client that sends none of them (curl, a script) needs the token.
* **Body size**: a body over the route's limit, or a state-changing one without Content-Length,
  is refused before it is read.
* **Errors**: nothing escapes as a traceback; a bug answers 500 in one line and logs one line.

Every answer also carries headers that keep it out of other sites' frames and sniffing.
"""
from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Callable

from .ids import shown

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_HEADER = "x-scale-token"
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'; "
                                  b"form-action 'self'; base-uri 'none'"),
]
log = logging.getLogger("scale.serve")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def host_name(host_header: str) -> str:
    """The name part of a Host header, lower case ("[::1]:8000" -> "[::1]", "a:80" -> "a").

    >>> host_name("LocalHost:8000"), host_name("[::1]:80"), host_name("127.0.0.1")
    ('localhost', '[::1]', '127.0.0.1')
    """
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[: h.find("]") + 1] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def cross_site_reason(method: str, headers: dict[str, str], token: str) -> str | None:
    """Why a request may not change state here (None: it may).

    >>> h = {"host": "127.0.0.1:8000"}
    >>> cross_site_reason("POST", {**h, "origin": "http://127.0.0.1:8000"}, "t") is None
    True
    >>> cross_site_reason("POST", {**h, "origin": "http://127.0.0.1:9000"}, "t")
    'cross-origin request from http://127.0.0.1:9000 refused'
    >>> cross_site_reason("POST", h, "t")[:22], cross_site_reason("POST", {**h, "x-scale-token": "t"}, "t")
    ('no same-origin proof: ', None)
    """
    if method.upper() in SAFE_METHODS:
        return None
    site = headers.get("sec-fetch-site", "").lower()
    origin = headers.get("origin")
    if site in ("cross-site", "same-site"):
        return f"{site} request refused: only this server's own page may send it"
    if origin is not None:
        own = {f"{scheme}://{headers.get('host', '').lower()}" for scheme in ("http", "https")}
        if origin.lower() not in own:
            return f"cross-origin request from {shown(origin)[:100]} refused"
        return None
    if site == "same-origin":
        return None
    given = headers.get(TOKEN_HEADER, "")
    if given and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode()):
        return None
    return ("no same-origin proof: send the server's token in the X-Scale-Token header "
            "(GET /api/index gives it) or use the page")


class Guard:
    """ASGI middleware: the checks of the module doc, then the app; errors become one JSON line."""

    def __init__(self, app, *, token: str, loopback_only: bool, body_limit: Callable[[str], int]) -> None:
        self.app, self.token, self.loopback_only, self.body_limit = app, token, loopback_only, body_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            return await _answer(send, *refusal)
        started = False

        async def send_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        try:
            await self.app(scope, receive, send_headers)
        except Exception as exc:  # noqa: BLE001  a bug costs its request one line, never the server or a traceback
            log.error("scale serve: internal error on %s %s: %s: %s", scope.get("method"), shown(scope.get("path", "")),
                      type(exc).__name__, shown(str(exc)).splitlines()[0][:300] if str(exc) else "")
            if not started:
                await _answer(send, 500, f"internal error ({type(exc).__name__}); the server goes on")

    def _refusal(self, scope, headers: dict[str, str]) -> tuple[int, str] | None:
        name = host_name(headers.get("host", ""))
        if self.loopback_only and name not in LOOPBACK_NAMES:
            return 421, f"this server answers only at a loopback address (localhost, 127.0.0.1), not {shown(name)[:100]!r}"
        reason = cross_site_reason(scope["method"], headers, self.token)
        if reason is not None:
            return 403, reason
        if scope["method"] in SAFE_METHODS:
            return None
        length = headers.get("content-length")
        if length is None:
            return 411, "send the request body with a Content-Length header"
        if not length.isdigit():
            return 400, "bad Content-Length header"
        limit = self.body_limit(scope.get("path", ""))
        if int(length) > limit:
            return 413, f"the request body is {int(length) / 2**20:.2f} MiB, over the limit of {limit / 2**20:.2f} MiB"
        return None


async def _answer(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
