"""Decode workers: a process pool that survives crashing decoders and hanging files.

decord can take its whole process down on some broken files and a damaged stream can
hang; both must cost one video, not the run. Each video gets a time limit; a crash or
a timeout rebuilds the pool, records that video as failed and resubmits the others.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import signal
import time
from collections import deque
from typing import Callable, Iterable, Iterator

from .prepare import ViewRecipe, prepare_video


def _init_worker(parent: int) -> None:
    import torch

    torch.set_num_threads(1)  # workers decode; the backbone owns the cores
    # Ctrl-C reaches the whole process group: the parent unwinds and kills its workers, which
    # must not each print a KeyboardInterrupt traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(parent)


def _exit_with_parent(parent: int, poll_s: float = 1.0) -> None:
    """A worker outlives a SIGKILLed parent (its task queue never closes): watch for the
    re-parenting and exit, so a killed extraction leaves no orphaned decoders holding memory.
    `parent` comes from the parent itself: it may already be dead when this runs."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _spawn_pool(workers: int) -> cf.ProcessPoolExecutor:
    """Decode workers in fresh interpreters (spawn: no forked torch/OpenMP state) that exit with us."""
    return cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                  initargs=(os.getpid(),))


def _ready() -> None:
    time.sleep(0.05)  # long enough that each warm-up task lands on its own new worker


Task = tuple[int, str, str]  # (row, path, video_id)


class DecodePool:
    """Yields (row, result) for tasks in submission order, `workers` videos in flight (+1 ahead).

    `start()` spawns the workers without waiting for them, so their start-up (each imports
    torch) overlaps whatever the caller does next, e.g. building the backbone.
    workers=0 decodes in the calling process (no crash or timeout protection; for debugging).
    """

    def __init__(self, workers: int, timeout_s: float, prepare: Callable = prepare_video) -> None:
        self.workers = workers
        self.timeout_s = timeout_s
        self.prepare = prepare
        self._pool: cf.ProcessPoolExecutor | None = None
        self._warming: list[cf.Future] = []
        self._last_done = time.monotonic()

    def start(self) -> "DecodePool":
        if self.workers > 0 and self._pool is None:
            self._pool = _spawn_pool(self.workers)
            self._warming = [self._pool.submit(_ready) for _ in range(self.workers)]
        return self

    def _wait_started(self) -> None:
        # every worker must be up before any video's clock starts: spawning (importing torch) is slow
        self.start()
        cf.wait(self._warming)
        self._warming = []
        self._last_done = time.monotonic()

    def _kill_pool(self) -> None:
        if self._pool is None:
            return
        for proc in list(getattr(self._pool, "_processes", {}).values()):  # executor has no public kill
            if proc.is_alive():
                proc.kill()
        # wait for the executor's manager thread (quick: its workers are dead): left running, it closed
        # its wake-up pipe while the interpreter's exit hook wrote to it, which printed "Exception
        # ignored ... Bad file descriptor" after an interrupted extraction
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "DecodePool":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._kill_pool()

    def run(self, tasks: Iterable[Task], recipe: ViewRecipe) -> Iterator[tuple[int, dict]]:
        if self.workers <= 0:
            for row, path, vid in tasks:
                yield row, self.prepare(path, vid, recipe)
            return
        pending = deque(tasks)
        inflight: deque[tuple[Task, cf.Future, float]] = deque()
        self._wait_started()
        while pending or inflight:
            while pending and len(inflight) < self.workers + 1:
                task = pending.popleft()
                inflight.append((task, self._pool.submit(self.prepare, task[1], task[2], recipe), time.monotonic()))
            task, future, started = inflight[0]
            # a video's clock starts once the one before it is handed over and the caller is back
            # (the caller may spend minutes on the backbone in between; that is not the decoder's time)
            started = max(started, self._last_done)
            try:
                result = future.result(timeout=max(0.0, started + self.timeout_s - time.monotonic()))
            except cf.TimeoutError:
                result = {"error": f"timed out after {self.timeout_s:.0f} s (decoder hung)"}
                self._restart(inflight, pending)
            except cf.process.BrokenProcessPool:
                result = self._isolate(task, recipe)
                self._restart(inflight, pending)
            except Exception as exc:  # an unexpected error inside the worker: record it, keep going
                result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            else:
                inflight.popleft()
            yield task[0], result
            self._last_done = time.monotonic()

    def _restart(self, inflight: deque, pending: deque) -> None:
        """Kill the pool and put every other in-flight video back at the front of the queue."""
        _, *others = [t for t, _, _ in inflight]
        inflight.clear()
        pending.extendleft(reversed(others))
        self._kill_pool()
        self._wait_started()

    def _isolate(self, task: Task, recipe: ViewRecipe) -> dict:
        """Re-run one video alone to tell whether it is the one that crashed the pool."""
        solo = _spawn_pool(1)
        try:
            return solo.submit(self.prepare, task[1], task[2], recipe).result(timeout=self.timeout_s)
        except cf.process.BrokenProcessPool:
            return {"error": "the decoder crashed on this file (corrupted or unsupported stream)"}
        except cf.TimeoutError:
            return {"error": f"timed out after {self.timeout_s:.0f} s (decoder hung)"}
        finally:
            for proc in list(getattr(solo, "_processes", {}).values()):
                if proc.is_alive():
                    proc.kill()
            solo.shutdown(wait=False, cancel_futures=True)


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 2) - 1))
