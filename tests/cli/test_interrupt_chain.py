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


def test_ctrl_c_during_an_in_process_run_stops_the_test_suite(monkeypatch, capsys):
    """The CLI turns Ctrl-C into exit 130 for its user; a test running it in-process passes the
    interruption on, so Ctrl-C stops `make test` instead of failing one test and going on."""
    import os
    import signal
    import time

    from tests.conftest import cli_runner

    def pressed_ctrl_c(args):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the handler interrupts this

    monkeypatch.setattr(cli.commands, "register", pressed_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        cli_runner(capsys)("train")
    assert signal.getsignal(signal.SIGINT) is not cli_app._interrupt  # the suite's own handler is back
