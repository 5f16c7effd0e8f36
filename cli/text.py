"""How user-supplied text (paths, video ids, class names, reasons) is printed through rich."""
from __future__ import annotations

from rich.markup import escape

from scale_toolkit.store.names import printable


def shown(value: object) -> str:
    """`[g01]` stays `[g01]` (rich markup escaped) and bytes that are not UTF-8 show as `\\xHH`."""
    return escape(printable(str(value)))
