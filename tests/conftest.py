"""Shared fixtures: the real data beside the repo, and running the CLI in-process."""
from __future__ import annotations

import os
import signal
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
        # Ctrl-C or SIGTERM sent to the suite while a command runs in-process: the CLI turned it into its
        # exit status; the suite stops as it would anywhere else instead of counting a failed test
        if code == 128 + signal.SIGINT:
            raise KeyboardInterrupt
        if code == 128 + signal.SIGTERM:
            os.kill(os.getpid(), signal.SIGTERM)  # the CLI has put pytest's own handling back
        captured = capture.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def run_cli(capsys):
    """Run `scale ARGS...` in-process; returns (exit_code, stdout, stderr)."""
    return cli_runner(capsys)


# ------------------------------------------------------------------ pytest-xdist workers share the cores
def _threads_per_worker() -> int | None:
    """Under pytest-xdist: the cores divided among the workers, so that the workers' torch threads do not
    oversubscribe the machine; None in a plain pytest run, which keeps torch's default. Set in the worker
    only, not through OMP_NUM_THREADS: the subprocesses a test starts keep what they would get outside
    pytest (most CLI runs pass --threads 1; with OMP_NUM_THREADS=1 test_host_memory's fresh interpreter
    faulted two of its eight steps' pages in 3 of 11 tries, 0 of 11 with torch's default)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers < 2:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // workers)


# ------------------------------------------------------------------ bytes the suite writes (issue #30)
# Two figures per process from /proc/self/io: "wchar" (every write call: files and pipes) and what reached
# storage ("write_bytes" less "cancelled_write_bytes": pages dirtied and not discarded by a delete before
# writeback). Linux adds a child's counters to its parent's when it is reaped, so the session's figure covers
# the CLI subprocesses and, under pytest-xdist, the workers too (the controller reaps them before its summary).
# The per-test figures come from the process that ran the test: an xdist worker sends its own back.
def _io_counters() -> dict[str, int]:
    try:
        lines = Path("/proc/self/io").read_text().splitlines()
    except OSError:  # not Linux, or /proc hidden: nothing to report
        return {}
    return {key: int(value) for key, value in (line.split(": ") for line in lines if ": " in line)}


def _io_delta(before: dict[str, int], after: dict[str, int]) -> tuple[int, int]:
    """(bytes through write calls, bytes reaching storage) between two readings."""
    stored = (after["write_bytes"] - before["write_bytes"]) - (after["cancelled_write_bytes"] - before["cancelled_write_bytes"])
    return after["wchar"] - before["wchar"], stored


def pytest_configure(config) -> None:
    threads = _threads_per_worker()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    config._scale_io_start = _io_counters()
    config._scale_io_per_test = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Bytes each test writes (setup, call, teardown; its subprocesses once reaped): the summary names the biggest."""
    before = _io_counters()
    yield
    after = _io_counters()
    if before and after:
        item.config._scale_io_per_test[item.nodeid] = _io_delta(before, after)[0]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session) -> None:
    config = session.config
    if hasattr(config, "workeroutput"):  # an xdist worker: its per-test figures go to the controller
        config.workeroutput["scale_io_per_test"] = config._scale_io_per_test


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist: a worker finished; keep its per-test figures for the summary."""
    node.config._scale_io_per_test.update(getattr(node, "workeroutput", {}).get("scale_io_per_test", {}))


def pytest_terminal_summary(terminalreporter, config) -> None:
    start, end = getattr(config, "_scale_io_start", {}), _io_counters()
    if not start or not end:
        return
    gib = 2**30
    wchar, stored = _io_delta(start, end)
    terminalreporter.write_line(
        f"bytes written by this session and its subprocesses: {wchar / gib:.2f} GiB "
        f"through write calls (files and pipes), {stored / gib:.2f} GiB reaching storage")
    biggest = sorted(getattr(config, "_scale_io_per_test", {}).items(), key=lambda kv: -kv[1])[:8]
    for nodeid, written in biggest:
        if written >= 50 * 2**20:
            terminalreporter.write_line(f"  {written / 2**20:8.0f} MiB  {nodeid}")


@pytest.fixture
def budget_for_data_only(monkeypatch):
    """`--max-memory` as a budget for the data alone: the tests that use it size streaming windows in
    bytes of data, far below any process's own memory. What the process holds and a step needs are
    kept back from the bound in real runs (tests/test_memory.py checks that accounting)."""
    monkeypatch.setattr("scale_toolkit.memory.resident_bytes", lambda: 0)
    monkeypatch.setattr("scale_toolkit.memory.SLACK", 0.0)
    monkeypatch.setattr("scale_toolkit.train.trainer.ssl_step_bytes", lambda *args: 0)
    monkeypatch.setattr("scale_toolkit.probes.context.probe_step_bytes", lambda *args: 0)
