"""Video ids as the page and the API show them, and back.

A store's id is the file name on disk, which on Linux may hold bytes that are not UTF-8 (read
by Python as lone surrogates, see scale_toolkit/store/names.py). Such a string cannot be put in
a JSON answer, an HTML page or a URL. The API shows it as the store writes it (each undecodable
byte as ``\\xHH``, backslashes doubled); every id that is valid UTF-8, i.e. nearly all, is shown
unchanged. A request may name a video either way.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from ..store.names import escape_id, needs_escape, printable, unescape_id

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def public_id(video_id: str) -> str:
    """The id as the API and the page show it (valid UTF-8 always).

    >>> public_id("a/b.avi"), public_id("caf\\udce9.avi")
    ('a/b.avi', 'caf\\\\xe9.avi')
    """
    return escape_id(video_id) if needs_escape(video_id) else video_id


def resolve_id(shown: str, known: Callable[[str], bool]) -> str | None:
    """The stored id a request names (as shown by `public_id`, or exactly), or None when unknown.

    >>> resolve_id("caf\\\\xe9.avi", {"caf\\udce9.avi"}.__contains__) == "caf\\udce9.avi"
    True
    """
    if known(shown):
        return shown
    try:
        stored = unescape_id(shown)
    except (UnicodeError, ValueError):
        return None
    return stored if stored != shown and known(stored) else None


def shown(text: str) -> str:
    """Any text (a class name, a message naming an id) as valid UTF-8 for JSON and HTML."""
    return printable(text)


def for_terminal(text: str) -> str:
    r"""Text safe to print: control characters (escape sequences, bells, carriage returns) as \xHH.

    >>> for_terminal("runs/\x1b[31mred\x07.faiss")
    'runs/\\x1b[31mred\\x07.faiss'
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", shown(text))
