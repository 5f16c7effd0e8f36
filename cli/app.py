"""The Typer app and what every command shares: the consoles, one-line errors (exit status 2),
SIGINT/SIGTERM handling and `--config FILE.toml` merging.

Commands live in cli/commands/, one module per command group; each parses flags, calls the library
and renders with rich, and holds no logic of its own. Flag defaults come from the library's config
dataclasses (cli/options.py).
"""
from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from pathlib import Path
from types import ModuleType

import typer
from rich.console import Console
from rich.progress import Progress

from scale_toolkit.errors import ScaleError, os_error_message
from scale_toolkit.toml_file import read_toml

from .progress import LineProgress, make_progress
from .text import safe, shown


def _click_exceptions() -> ModuleType:
    """Recent typer vendors its own click; older ones use the click package."""
    try:
        return importlib.import_module("typer._click.exceptions")
    except ImportError:  # pragma: no cover
        return importlib.import_module("click.exceptions")


click_exc = _click_exceptions()

EXIT_ERRORS = tuple({typer.Exit, getattr(click_exc, "Exit", typer.Exit)})
ABORT_ERRORS = tuple({typer.Abort, getattr(click_exc, "Abort", typer.Abort)})

app = typer.Typer(
    name="scale",
    help="Spatio-Temporal Crop Aggregation: extract clip features once, train SCALE on the cache, probe and retrieve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class _EscapingConsole(Console):
    """Every string printed - a line, a table cell or title, a progress line - is rendered through
    cli/text.py::safe, so no name reaches the terminal with its control characters active."""

    def render_str(self, text: str, **kwargs):  # noqa: ANN201 - rich's own signature
        return super().render_str(safe(text), **kwargs)


def _console(stderr: bool) -> Console:
    """Markup and emoji codes off: every printed string is literal, so a user's `[g01]`, `[/bold]`
    or `:smile:` in a file, class or folder name can neither vanish, restyle the line nor crash a
    print (style goes through Text/style=, cli/text.py). Text lines never wrap (soft_wrap); written
    to a file or a pipe, the page is 160 wide instead of rich's 80, so paths and names in tables
    stay whole in logs (COLUMNS still wins)."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or "COLUMNS" in os.environ else 160
    return _EscapingConsole(stderr=stderr, markup=False, emoji=False, soft_wrap=True, width=width)


console = _console(stderr=True)  # progress and tables go to stderr; --json files carry machine output
out = _console(stderr=False)  # results meant for stdout


def progress_bar(label: str) -> Progress | LineProgress:
    """The commands' progress on stderr: a rich bar in a terminal, plain lines in a log (cli/progress.py)."""
    return make_progress(label, console)


# --precision of every command that computes (extract, train): what `auto` does, in one place
PRECISION_HELP = ("auto (default): bf16 where the machine computes it natively (CUDA with bf16; CPUs with "
                  "AVX-512 BF16 or AMX), fp32 elsewhere (e.g. AVX2-only CPUs, where bf16 runs ~30x slower); "
                  "bf16 or fp32 to force one. The choice and its reason are printed and recorded.")

_state: dict = {"debug": False, "signal": signal.SIGINT, "on_interrupt": "nothing was written; rerun the command"}


def on_interrupt(hint: str) -> None:
    """What the interrupt line tells the user was kept and how to continue (set by each command)."""
    _state["on_interrupt"] = hint


def _interrupt(signum: int, frame) -> None:
    """SIGINT and SIGTERM both unwind like Ctrl-C (finally blocks, locks and temp files clean up);
    batch schedulers send SIGTERM before they kill, and a job script must not see success."""
    _state["signal"] = signum
    raise KeyboardInterrupt


def _during_interrupt(exc: BaseException) -> bool:
    """True for an error a library raised while unwinding from Ctrl-C / SIGTERM (torch's
    checkpoint writer, stopped mid-file, fails as it closes): the interruption is what happened."""
    seen = exc.__context__
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__context__
    return False


def _ended_early(exc: EOFError) -> str:
    """An EOFError that escaped the library: a file it read was empty or cut short (not a Ctrl-C)."""
    detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else "EOFError"
    return (f"a file this command reads ended early ({detail}): it is empty or truncated; "
            "check the input files (scale --debug ... shows where)")


def _interrupted() -> SystemExit:
    signum = _state["signal"]
    print(f"scale: interrupted by {signal.Signals(signum).name}: {shown(_state['on_interrupt'])}", file=sys.stderr)
    return SystemExit(128 + signum)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors.")) -> None:
    _state["debug"] = debug


def _load_config(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    """Eager `--config` callback: the TOML file becomes the command's default map, so flags
    given on the command line win and a required flag may come from the file."""
    if not value:
        return value
    path = Path(value)
    values = read_toml(path, "config file")
    by_flag = {}  # "batch_size", "batch-size" and the param name all name the --batch-size flag
    for p in ctx.command.params:
        if p.name == "config":
            continue
        for opt in [p.name, *getattr(p, "opts", [])]:
            by_flag[opt.lstrip("-").replace("-", "_")] = p.name
    defaults = dict(ctx.default_map or {})
    for key, val in values.items():
        name = by_flag.get(key.replace("-", "_"))
        if name is None:
            raise ScaleError(f"{path}: unknown key '{key}' (keys must be this command's flags)")
        defaults[name] = val
    ctx.default_map = defaults
    return path


CONFIG_OPTION = typer.Option(
    None, "--config", is_eager=True, callback=_load_config,
    help="TOML file whose keys mirror the flags (e.g. batch-size = 256); flags given on the command line win.",
)


def resolved(kwargs: dict) -> dict:
    """The resolved flags as plain JSON-able values, for writing next to an output."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in kwargs.items() if k != "config"}


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user mistakes become one line on stderr and exit status 2."""
    # Idle OpenMP threads sleep instead of spinning: on shared or busy cores spinning threads made
    # training steps ~1.7x slower (benchmarks/RESULTS.md, train_throughput). Must precede `import torch`.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = sys.argv[1:] if argv is None else argv
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        return _run(args)
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _run(args)
    finally:  # in-process callers (tests, notebooks) get their own handlers back
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(args: list[str]) -> None:
    try:
        from .commands import register

        register(args)  # inside the try: an early Ctrl-C is one line too
        code = app(args=args, prog_name="scale", standalone_mode=False)
    except EXIT_ERRORS as exc:
        raise SystemExit(exc.exit_code) from None
    except ABORT_ERRORS as exc:
        if isinstance(exc.__cause__, EOFError):  # click turns any EOFError of a command into Abort, as for Ctrl-C
            if _state["debug"]:
                raise exc.__cause__ from None
            print(f"error: {shown(_ended_early(exc.__cause__))}", file=sys.stderr)
            raise SystemExit(2) from None
        raise _interrupted() from None
    except click_exc.ClickException as exc:  # bad flags, missing arguments
        print(f"error: {shown(exc.format_message())} (see scale --help)", file=sys.stderr)
        raise SystemExit(2) from None
    except ScaleError as exc:
        if _state["debug"]:
            raise
        print(f"error: {shown(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise _interrupted() from None
    except OSError as exc:  # disk full, read-only folder, ...: an ordinary fault, not a bug
        if _state["debug"]:
            raise
        print(f"error: {shown(os_error_message(exc))}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as exc:
        if _during_interrupt(exc):
            raise _interrupted() from None
        raise
    # non-standalone typer turns an interrupt inside a command into a returned 130, not an exception
    if code == 130:
        raise _interrupted()
    if isinstance(code, int) and code:
        raise SystemExit(code)
