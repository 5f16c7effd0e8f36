"""`scale serve`: browse and query a retrieval index in a web page, with a JSON API behind it.

Modules:

* ``media``: at index build time, a poster JPEG and a short muted animated-WebP preview per
  gallery video in INDEX.media/ (the server never decodes a gallery video per request).
* ``search``: ``SearchService``, the queries a page or script can make against one index (by
  gallery/store video id, by descriptor vector, by an uploaded video file embedded in a worker
  process), with class filter, exclusion of the same video or group, pagination and P@k.
* ``options``: ``ServeOptions``, the defaults of `scale serve`'s flags and their checks.
* ``app``: the FastAPI app (HTML page, static files, JSON API, media) and ``run_server``.

Nothing here prints; errors of a request become a 4xx with a one-line JSON error.
"""
