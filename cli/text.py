"""How user-supplied text (paths, video ids, class names, reasons) is printed.

The consoles print without markup or emoji codes (cli/app.py), so `[g01]` or `[/bold]` in a
name is printed as it is; what is left is a name that is not valid UTF-8.
"""
from __future__ import annotations

from scale_toolkit.store.names import printable


def shown(value: object) -> str:
    """Bytes of a name that are not UTF-8 show as `\\xHH` (not as a replacement character)."""
    return printable(str(value))


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
