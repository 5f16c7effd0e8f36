"""`scale serve`: browse and query a retrieval index in a web page, with a JSON API behind it.

Modules:

* ``media``: at index build time, a poster JPEG and a short muted animated-WebP preview per
  gallery video in INDEX.media/ (the server never decodes a gallery video per request).
* ``search``: ``SearchService``, the queries a page or script can make against one index (by
  gallery/store video id, by descriptor vector, by an uploaded video file embedded in a worker
  process), the gallery pages, class filter, exclusion of the same video or group, pagination
  and P@k; media confined to INDEX.media/, no server paths in what it answers.
* ``uploads``: in the worker process, an upload's header checked against the pixel budget before
  decoding, then embedded, and its poster; decoder messages in plain words.
* ``workers``: the worker processes of uploads (one job per process; a timeout or crash is its own).
* ``schemas``: the typed, bounded models of request bodies.
* ``guard``: what every request passes first (loopback Host, same-origin or token, body size,
  errors as one line).
* ``ids``: video ids (non-UTF-8 ones included) as the API shows them, and back.
* ``options``: ``ServeOptions``, the defaults of `scale serve`'s flags and their checks.
* ``app``: the FastAPI app (HTML page, static files, JSON API, media) and ``run_server``.

Nothing here prints; a refused request is a 4xx with a one-line JSON error.
"""
