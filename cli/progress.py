"""Progress for long commands: a rich bar in a terminal, plain timestamped lines in a log file.

A rich bar redraws one line in place, so redirected to a file (a job scheduler's log) it shows
nothing until the command ends. There, ``LineProgress`` prints ``label: done/total (pct) info,
elapsed, ETA`` every ``every_s`` seconds, at a milestone (an epoch, a written block) unless one
was printed in the last ``milestone_s`` seconds, and once at the end.
"""
from __future__ import annotations

import time
from datetime import datetime

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class LineProgress:
    """The subset of ``rich.progress.Progress`` the commands use, printed as plain lines."""

    def __init__(self, label: str, console: Console, every_s: float = 30.0, milestone_s: float = 5.0) -> None:
        self.label, self.console, self.every_s, self.milestone_s = label, console, every_s, milestone_s
        self.tasks: dict[int, dict] = {}

    def start(self) -> None:
        pass

    def __enter__(self) -> "LineProgress":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields) -> int:
        task = len(self.tasks)
        now = time.monotonic()
        self.tasks[task] = {"total": total, "completed": completed, "start": completed, "t0": now,
                            "printed": now, "info": fields.get("info", "")}
        return task

    def update(self, task: int, completed: float | None = None, milestone: bool = False, **fields) -> None:
        state = self.tasks[task]
        if completed is not None:
            state["completed"] = completed
        if "info" in fields:
            state["info"] = fields["info"]
        since = time.monotonic() - state["printed"]
        if since >= self.every_s or (milestone and since >= self.milestone_s):
            self._print(state)

    def stop(self) -> None:
        for state in self.tasks.values():
            self._print(state)
        self.tasks = {}

    def _print(self, state: dict) -> None:
        now = time.monotonic()
        state["printed"] = now
        done, total, elapsed = state["completed"], state["total"], now - state["t0"]
        line = f"{datetime.now():%H:%M:%S} {self.label}: {done:g}"
        if total:
            line += f"/{total:g} ({100 * done / total:.0f}%)"
        if state["info"]:
            line += f"  {state['info']}"
        line += f"  elapsed {_clock(elapsed)}"
        rate = (done - state["start"]) / elapsed if elapsed > 0 else 0.0
        if total and rate > 0 and done < total:
            line += f"  ETA {_clock((total - done) / rate)}"
        # literal (names may hold "[...]") and one line at any width
        self.console.print(line, markup=False, emoji=False, soft_wrap=True, highlight=False)


def make_progress(label: str, console: Console) -> Progress | LineProgress:
    """The commands' progress: label, bar, done/total, a free ``info`` text, elapsed time and ETA
    in a terminal; ``LineProgress`` when the output is a file or a pipe."""
    if not console.is_terminal:
        return LineProgress(label, console)
    return Progress(
        TextColumn(label, style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}", markup=False), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, transient=False,
    )
