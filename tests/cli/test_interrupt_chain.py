"""An error a library raises while unwinding from Ctrl-C / SIGTERM is reported as the interruption."""
import pytest

import cli.commands
from cli import app as cli_app


def _torch_save_stopped_mid_file(args):
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:  # torch's zip writer closing a half-written file does this
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 7742336 vs 7742224")  # noqa: B904


def test_error_raised_during_an_interrupt_exits_as_interrupted(monkeypatch, capsys):
    monkeypatch.setattr(cli.commands, "register", _torch_save_stopped_mid_file)
    with pytest.raises(SystemExit) as exit_info:
        cli_app._run(["train"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 130
    assert err.startswith("scale: interrupted by SIGINT") and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_an_ordinary_error_is_not_taken_for_an_interrupt(monkeypatch):
    def fails(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli.commands, "register", fails)
    with pytest.raises(RuntimeError, match="a bug"):
        cli_app._run(["train"])
