"""`scale <command> --help` works for every registered command, so a new command is covered automatically."""
from __future__ import annotations

import re

import pytest
import typer

import cli.commands  # noqa: F401  (registers every command on the app)
from cli.app import app

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
