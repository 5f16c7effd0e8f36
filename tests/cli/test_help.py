"""`scale <command> --help` works for every registered command, so a new command is covered automatically."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import typer

from cli.app import app
from cli.commands import MODULES, register

register()  # every command
COMMANDS = typer.main.get_command(app)  # the click group Typer builds, whichever click it ships
NAMES = sorted(COMMANDS.commands)


def _every_command(group, path=()):
    """(path of names, click command) of every command and subcommand, depth first."""
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if hasattr(command, "commands"):  # a Typer sub-app: its own commands too
            yield from _every_command(command, (*path, name))


EVERY = dict(_every_command(COMMANDS))


def test_every_documented_command_is_registered():
    assert {"extract", "train", "probe", "retrieve", "import", "export", "info", "backbones", "demo"} <= set(NAMES)


def test_register_knows_the_module_of_every_command():
    """`scale CMD` imports only CMD's module, found in cli.commands.MODULES."""
    assert set(MODULES) == set(NAMES)


HEAVY = ("torch", "zarr", "faiss")  # seconds of imports that no --help page needs


@pytest.mark.parametrize("path", [(), *sorted({(name,) for name in MODULES})], ids=lambda path: " ".join(path) or "scale")
def test_help_imports_no_torch_zarr_or_faiss(path):
    """`scale --help` and `scale CMD --help` read flag defaults from the config dataclasses, which
    import no torch, zarr or FAISS (each package imports its heavy modules on first use)."""
    code = ("import sys; from cli.main import main\n"
            f"try:\n    main({[*path, '--help']!r})\nexcept SystemExit:\n    pass\n"
            f"print([name for name in {HEAVY!r} if name in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("path", sorted(EVERY), ids=" ".join)
def test_help_exits_0_with_usage_and_every_option(run_cli, path):
    code, out, err = run_cli(*path, "--help")
    assert code == 0, err
    assert "Usage:" in out and f"scale {' '.join(path)}" in out
    command = EVERY[path]
    assert command.help and command.help.split("\n")[0].strip() in " ".join(out.split())
    for option in (p for p in command.params if p.param_type_name == "option" and not getattr(p, "hidden", False)):
        assert any(flag in out for flag in option.opts), f"{' '.join(path)} --help does not show {option.opts}"
    # every default an option states (typer's "[default: X]", or ours in the help text) is on the page
    ctx = command.context_class(command, info_name=path[-1])
    page = " ".join(out.split())
    for option in (p for p in command.params if p.param_type_name == "option"):
        record = option.get_help_record(ctx)
        for stated in re.findall(r"\[default: [^\]]*\]", " ".join((record or ("", ""))[1].split())):
            assert stated in page, f"{' '.join(path)} --help does not show {option.opts[0]} {stated}"
