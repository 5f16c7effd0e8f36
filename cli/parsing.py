"""Parsing of flag values that Typer cannot express by itself."""
from __future__ import annotations

from typing import Iterable

from scale_toolkit.errors import ScaleError


def parse_int_list(values: Iterable[str] | str | int | None, flag: str) -> list[int] | None:
    """Integers from a repeated and/or comma- or space-separated flag; None when the flag was not given.

    >>> parse_int_list(["1,5", "10 20"], "--k")
    [1, 5, 10, 20]
    >>> parse_int_list(None, "--k") is None
    True
    """
    if values is None:
        return None
    if isinstance(values, (str, int)):
        values = [values]
    parsed = []
    for value in values:
        for part in str(value).replace(",", " ").split():
            try:
                parsed.append(int(part))
            except ValueError:
                raise ScaleError(f"{flag} takes integers, repeated or comma-separated "
                                 f"(e.g. {flag} 10 {flag} 20 or {flag} 10,20), got {value!r}") from None
    return parsed
