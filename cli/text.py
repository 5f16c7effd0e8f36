"""How text reaches the terminal: every console print and every error line goes through here.

The consoles print without markup or emoji codes (cli/app.py), so `[g01]` or `[/bold]` in a
name is printed as it is. `shown` is for a name (a path, video id, class name, reason): bytes
that are not UTF-8 show as `\\xHH`, and control characters, escape sequences and direction
overrides show escaped (`\\x1b[31m`, `\\x0a`), so a file name cannot colour, move, retitle or
rewrite the terminal, nor split one line into two. `safe` is the same for scale's own multi-line
output (newlines and tabs kept); the consoles apply it to every string they print.
"""
from __future__ import annotations

from scale_toolkit.store.names import terminal_text


def shown(value: object) -> str:
    """A name, as one escaped line."""
    return terminal_text(str(value))


def safe(value: object) -> str:
    """Printed text with its line breaks kept and every other control character escaped."""
    return terminal_text(str(value), keep_lines=True)


def human_bytes(n: int) -> str:
    """A byte count in binary units.

    >>> human_bytes(512), human_bytes(93 * 1024**2)
    ('512 B', '93.0 MiB')
    """
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
