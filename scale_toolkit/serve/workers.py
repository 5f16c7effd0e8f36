"""Worker processes for uploaded videos: a decoder crash, hang or memory blow-up costs its own
request, never the server nor another upload.

Each job runs alone in one worker process (spawned on demand, kept for the next job while it
behaves). A job that overruns its time limit kills only its own worker; a worker that dies
fails only its own job; others go on in theirs. At most `size` jobs run at once; a job that
finds every worker busy waits up to `wait_s` for one, then is refused as busy (429).
Workers ignore SIGINT: Ctrl-C in the terminal stops the server, which then ends them.
"""
from __future__ import annotations

import multiprocessing as mp
import signal
import threading
import time
from typing import Any, Callable

from ..errors import ScaleError


class WorkerCrashed(Exception):
    """The worker process died during the job (a decoder segfault, the OOM killer, a kill)."""


class WorkerTimeout(Exception):
    """The job overran its time limit; its worker was killed."""


class WorkerBusy(Exception):
    """No worker became free in time."""


class PoolClosed(Exception):
    """The server is stopping: the job was not run, or its worker was ended."""


class JobFailed(Exception):
    """The job raised: ``kind`` is "scale" for a ScaleError (a message for the user), else "bug"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _worker_main(conn) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops its workers itself
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked since the spawn: see _Worker
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", fn(*args))
        except ScaleError as exc:
            reply = ("scale", str(exc))
        except Exception as exc:  # noqa: BLE001  the server answers it as this job's failure
            reply = ("bug", f"{type(exc).__name__}: {exc}")
        conn.send(reply)


class _Worker:
    def __init__(self) -> None:
        ctx = mp.get_context("spawn")  # no fork of a threaded server
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child,), daemon=True, name="scale-serve-upload")
        # Ctrl-C in a terminal signals the whole process group: a worker still starting up would print
        # a KeyboardInterrupt traceback. The child inherits this blocked mask until _worker_main ignores SIGINT.
        before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self.proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)
        child.close()

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


class WorkerPool:
    def __init__(self, size: int = 2, wait_s: float = 60.0) -> None:
        self.size, self.wait_s = size, wait_s
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Worker] = []
        self._running: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False

    def run(self, fn: Callable, args: tuple, timeout_s: float) -> Any:
        """`fn(*args)` in a worker process: its result, or one of this module's exceptions."""
        self._wait_for_slot()
        worker = None
        try:
            with self._lock:
                if self._closed:
                    raise PoolClosed("the server is stopping")
                # a new worker starts under the lock (Process.start only launches the interpreter: a few
                # ms), so close() never misses a worker that is still starting and returns after it is gone
                worker = self._idle.pop() if self._idle else _Worker()
                self._running.add(worker)
            try:
                return self._job(worker, fn, args, timeout_s)
            except WorkerCrashed:
                if self._closed:
                    raise PoolClosed("the server is stopping") from None
                raise
        finally:
            if worker is not None:
                with self._lock:
                    self._running.discard(worker)
                    keep = not self._closed and worker.proc.is_alive() and not worker.conn.closed
                    if keep:
                        self._idle.append(worker)
                if not keep:
                    worker.kill()
            self._slots.release()

    def _wait_for_slot(self) -> None:
        """Take a slot, waiting up to wait_s; in short steps, so that close() also ends the waiting."""
        deadline = time.monotonic() + self.wait_s
        while not self._slots.acquire(timeout=min(0.5, max(0.0, deadline - time.monotonic()))):
            if self._closed:
                raise PoolClosed("the server is stopping")
            if time.monotonic() >= deadline:
                raise WorkerBusy(f"every upload worker stayed busy for {self.wait_s:g} s")

    def _job(self, worker: _Worker, fn: Callable, args: tuple, timeout_s: float) -> Any:
        try:
            worker.conn.send((fn, args))
            if not worker.conn.poll(timeout_s):
                worker.kill()
                raise WorkerTimeout(f"the job took longer than {timeout_s:g} s")
            kind, value = worker.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            worker.kill()
            raise WorkerCrashed("the worker process died") from None
        if kind != "ok":
            raise JobFailed(kind, value)
        return value

    def close(self) -> None:
        """End every worker, idle, running or starting (a running job fails as crashed); returns once
        they are gone (killed and reaped), not while a SIGKILLed worker is still on its way out."""
        with self._lock:
            self._closed = True
            workers, self._idle = [*self._idle, *self._running], []
        for worker in workers:
            if worker.proc.is_alive():
                worker.proc.kill()
        for worker in workers:
            worker.proc.join(5)  # a SIGKILLed process ends at once; 5 s only bounds a stuck kernel
