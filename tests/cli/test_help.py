"""`scale <command> --help` works for every registered command, so a new command is covered automatically."""
from __future__ import annotations

import pytest
import typer

import cli.commands  # noqa: F401  (registers every command on the app)
from cli.app import app

COMMANDS = typer.main.get_command(app)  # the click group Typer builds, whichever click it ships
NAMES = sorted(COMMANDS.commands)


def test_every_documented_command_is_registered():
    assert {"extract", "train", "probe", "retrieve", "import", "export", "info", "backbones", "demo"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_help_exits_0_with_usage_and_every_option(run_cli, name):
    code, out, err = run_cli(name, "--help")
    assert code == 0, err
    assert "Usage:" in out and f"scale {name}" in out
    command = COMMANDS.commands[name]
    assert command.help and command.help.split("\n")[0].strip() in " ".join(out.split())
    for option in (p for p in command.params if p.param_type_name == "option" and not getattr(p, "hidden", False)):
        assert any(flag in out for flag in option.opts), f"{name} --help does not show {option.opts}"
