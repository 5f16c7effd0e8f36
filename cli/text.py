"""How user-supplied text (paths, video ids, class names, reasons) is printed.

The consoles print without markup or emoji codes (cli/app.py), so `[g01]` or `[/bold]` in a
name is printed as it is; what is left is a name that is not valid UTF-8.
"""
from __future__ import annotations

from scale_toolkit.store.names import printable


def shown(value: object) -> str:
    """Bytes of a name that are not UTF-8 show as `\\xHH` (not as a replacement character)."""
    return printable(str(value))
