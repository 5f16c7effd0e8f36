"""Video ids that are not valid UTF-8, stored losslessly.

A Linux file name is any byte sequence; Python reads the bytes that are not UTF-8 as lone
surrogates (PEP 383 "surrogateescape"), which Zarr's UTF-8 strings cannot hold. Such an id is
stored with each undecodable byte written as the four characters `\\xHH` and each backslash
doubled, and its row is listed in the store attribute `escaped_video_ids`; reading undoes both,
so `FeatureStore.video_ids` gives back exactly the name on disk (`os.fsencode(id)` = its bytes).
Ids that are valid UTF-8 (all others) are stored unchanged.
"""
from __future__ import annotations

import re

_ESCAPE = re.compile(rb"\\(\\|x[0-9a-f]{2})")


def needs_escape(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def escape_id(name: str) -> str:
    raw = name.encode("utf-8", "surrogateescape").replace(b"\\", b"\\\\")
    return raw.decode("utf-8", "backslashreplace")


def unescape_id(stored: str) -> str:
    raw = _ESCAPE.sub(lambda m: b"\\" if m.group(1) == b"\\" else bytes([int(m.group(1)[1:], 16)]), stored.encode("utf-8"))
    return raw.decode("utf-8", "surrogateescape")


def printable(text: str) -> str:
    """Any string as valid UTF-8 for messages and free-text fields (undecodable bytes as \\xHH)."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # surrogates that are not escaped bytes (e.g. from JSON)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


# Characters a terminal acts on instead of showing: C0/C1 controls (ESC starts colour, cursor and
# title sequences; CR, BS and BEL rewrite or ring), DEL, and the bidirectional overrides that
# reorder what follows them (a name could show as another).
_ACTIVE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_ACTIVE_KEEPING_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_text(text: str, keep_lines: bool = False) -> str:
    """`printable(text)` with every control character and direction override shown escaped (`\\x1b`,
    `\\u202e`), so a name can neither drive the terminal nor pass for another; `keep_lines` keeps
    newlines and tabs (for scale's own multi-line output; a name or an error line escapes them).

    >>> terminal_text("a\\x1b[31mred\\r\\n")
    'a\\\\x1b[31mred\\\\x0d\\\\x0a'
    >>> terminal_text("one\\ttwo\\n", keep_lines=True)
    'one\\ttwo\\n'
    """
    return (_ACTIVE_KEEPING_LINES if keep_lines else _ACTIVE).sub(_escaped, printable(text))
