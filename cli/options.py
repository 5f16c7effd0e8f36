"""Typer options whose defaults come from the library's config dataclasses, so each default lives once.

`option_from(TrainConfig, "ssl_val", "--ssl-val", help=...)` is `typer.Option(0.1, "--ssl-val", ...)`
with the 0.1 read from ``TrainConfig``; `--help` shows it as usual. `unset_option` is for flags
whose default must stay ``None`` so the library can tell a flag given from one left out (`scale
train --official` fills those with the official code's values); its help states the default.
tests/cli/test_option_defaults.py checks every command's options against the dataclasses.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Optional

import typer


def config_default(config: type, name: str) -> Any:
    """The default of field `name` of dataclass `config` (a ``default_factory`` is called).

    >>> from scale_toolkit.train.config import TrainConfig
    >>> config_default(TrainConfig, "batch_size")
    512
    """
    for spec in dataclasses.fields(config):
        if spec.name != name:
            continue
        if spec.default is not dataclasses.MISSING:
            return spec.default
        if spec.default_factory is not dataclasses.MISSING:
            return spec.default_factory()
        raise ValueError(f"{config.__name__}.{name} has no default")
    raise ValueError(f"{config.__name__} has no field {name!r}")


def shown_default(value: Any) -> str:
    """A default as a help text shows it: small floats in short exponent form, sequences comma-joined.

    >>> shown_default(1e-3), shown_default(0.05), shown_default(10.0), shown_default((1, 5, 10)), shown_default("fixed")
    ('1e-3', '0.05', '10', '1,5,10', 'fixed')
    """
    if isinstance(value, float) and value and abs(value) < 1e-2:
        mantissa, exponent = f"{value:.6e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(shown_default(v) for v in value)
    return str(value)


def option_from(config: type, name: str, *flags: str, **kwargs: Any) -> Any:
    """``typer.Option`` with the default of `config`'s field `name`."""
    return typer.Option(config_default(config, name), *flags, **kwargs)


def unset_option(config: type, name: str, *flags: str, help: str, official: Optional[Any] = None,
                 **kwargs: Any) -> Any:
    """``typer.Option`` defaulting to None (= not given), its help ending in `config`'s default
    for `name` (and the `--official` value, where that preset differs)."""
    stated = f"default: {shown_default(config_default(config, name))}"
    if official is not None:
        stated += f"; --official: {shown_default(official)}"
    return typer.Option(None, *flags, help=f"{help}  [{stated}]", **kwargs)


def with_switches(command: Callable[..., None], switches: list[tuple[str, str, str]], after: str) -> Callable[..., None]:
    """``command`` with boolean flags (parameter name, flag, help) added after its parameter ``after``:
    flags that come from a library table (`scale probe`'s row flags from probes/rows.py) rather than
    from the command's own signature. ``command`` takes them as ``**kwargs``.

    >>> def cmd(a: int = typer.Option(1, "--a"), **extra: bool) -> None: ...
    >>> list(inspect.signature(with_switches(cmd, [("b", "--b", "B.")], after="a")).parameters)
    ['a', 'b']
    """
    signature = inspect.signature(command, eval_str=True)
    params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    at = [p.name for p in params].index(after) + 1
    added = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=bool,
                               default=typer.Option(False, flag, help=help)) for name, flag, help in switches]
    command.__signature__ = signature.replace(parameters=params[:at] + added + params[at:])  # type: ignore[attr-defined]
    return command
