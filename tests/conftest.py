"""Shared fixtures: the real data beside the repo, and running the CLI in-process."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("SCALE_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (official split files and real clips); tests using it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


def cli_runner(capture):
    """`scale ARGS...` in-process, its output read from a pytest capture fixture (capsys or capfd):
    returns (exit_code, stdout, stderr)."""
    from cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capture.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def run_cli(capsys):
    """Run `scale ARGS...` in-process; returns (exit_code, stdout, stderr)."""
    return cli_runner(capsys)
