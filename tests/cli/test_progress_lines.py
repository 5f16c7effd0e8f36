"""Long commands in a log file (not a terminal) print plain progress lines, not nothing."""
import os
import re
import shutil
import subprocess
import sys

from rich.console import Console

from cli.progress import LineProgress
from tests.train.helpers import make_train_store


def test_line_progress_prints_milestones_throttled_and_the_end(tmp_path):
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        bar = LineProgress("train", Console(file=f, width=40), every_s=3600, milestone_s=0)
        task = bar.add_task("train", total=4, info="")
        bar.update(task, completed=1, info="epoch 1/4  [loss] 1.0")  # no milestone, interval not due: silent
        bar.update(task, completed=2, info="epoch 2/4", milestone=True)
        bar.milestone_s = 3600
        bar.update(task, completed=3, info="epoch 3/4", milestone=True)  # too soon after the last line
        bar.update(task, completed=4, info="epoch 4/4  [loss] 0.5")
        bar.stop()
    lines = log.read_text().splitlines()
    assert len(lines) == 2, lines  # one line each, however narrow the console
    assert re.fullmatch(r"\d\d:\d\d:\d\d train: 2/4 \(50%\)  epoch 2/4  elapsed 0:00:0\d  ETA 0:00:\d\d", lines[0])
    assert "train: 4/4 (100%)  epoch 4/4  [loss] 0.5  elapsed" in lines[1] and "ETA" not in lines[1]


def test_scale_train_writes_progress_lines_to_a_log(tmp_path):
    make_train_store(tmp_path / "train.zarr")
    scale = shutil.which("scale", path=os.path.dirname(sys.executable)) or "scale"
    with open(tmp_path / "err.log", "w") as err:
        done = subprocess.run([scale, "train", "--store", str(tmp_path / "train.zarr"), "--out", str(tmp_path / "run"),
                               "--epochs", "3", "--batch-size", "12", "--hidden", "32", "--threads", "1", "--ssl-val", "0"],
                              stdout=subprocess.PIPE, stderr=err, text=True, timeout=600)
    assert done.returncode == 0
    lines = (tmp_path / "err.log").read_text().splitlines()
    assert lines[0].startswith("precision: ")
    progress = [ln for ln in lines if " train: " in ln]
    assert progress and "train: 9/9 (100%)" in progress[-1] and "epoch 3: loss" in progress[-1]
    assert all(len(ln) < 200 for ln in lines)
