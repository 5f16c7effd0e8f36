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


# ------------------------------------------------------------------ bytes the suite writes (issue #30)
def _io_counters() -> dict[str, int]:
    """This process's I/O counters; Linux adds each child's when it is reaped (the CLI subprocesses)."""
    try:
        lines = Path("/proc/self/io").read_text().splitlines()
    except OSError:  # not Linux, or /proc hidden: nothing to report
        return {}
    return {key: int(value) for key, value in (line.split(": ") for line in lines if ": " in line)}


def pytest_configure(config) -> None:
    config._scale_io_start = _io_counters()
    config._scale_io_per_test = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Bytes each test writes (setup, call, teardown; its subprocesses once reaped): the summary names the biggest."""
    before = _io_counters()
    yield
    after = _io_counters()
    if before and after:
        item.config._scale_io_per_test[item.nodeid] = after["wchar"] - before["wchar"]


def pytest_terminal_summary(terminalreporter, config) -> None:
    start, end = getattr(config, "_scale_io_start", {}), _io_counters()
    if not start or not end:
        return
    gib = 2**30
    stored = (end["write_bytes"] - start["write_bytes"]) - (end["cancelled_write_bytes"] - start["cancelled_write_bytes"])
    terminalreporter.write_line(
        f"bytes written by this session and its subprocesses: {(end['wchar'] - start['wchar']) / gib:.2f} GiB "
        f"through write calls (files and pipes), {stored / gib:.2f} GiB reaching storage")
    biggest = sorted(getattr(config, "_scale_io_per_test", {}).items(), key=lambda kv: -kv[1])[:8]
    for nodeid, written in biggest:
        if written >= 50 * 2**20:
            terminalreporter.write_line(f"  {written / 2**20:8.0f} MiB  {nodeid}")
