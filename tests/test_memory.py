"""`--max-memory` bounds the whole process: the data gets what is left after the process's own
memory and a step's (issue #25)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import scale_toolkit.memory as memory
from scale_toolkit.errors import ScaleError
from scale_toolkit.model.config import ScaleConfig
from scale_toolkit.model.scale import ScaleModel
from scale_toolkit.probes.footprint import clip_head_bytes, probe_step_bytes
from scale_toolkit.probes.grid import resolve_grids
from scale_toolkit.train.footprint import parameter_count, ssl_step_bytes
from tests.probes.conftest import build_store
from tests.train.helpers import make_train_store

MiB = 2**20
REPO = Path(__file__).resolve().parents[1]
needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc")


def test_the_data_gets_the_bound_less_the_process_and_a_step(monkeypatch):
    monkeypatch.setattr(memory, "resident_bytes", lambda: 300 * MiB)
    budget, source = memory.memory_budget("1G", working=100 * MiB)
    assert budget == int(2**30 * (1 - memory.SLACK)) - 400 * MiB
    assert "--max-memory 1G" in source and "0.29 GiB this process held" in source and "0.10 GiB" in source


def test_a_bound_below_what_the_process_needs_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(memory, "resident_bytes", lambda: 300 * MiB)
    with pytest.raises(ScaleError, match=r"--max-memory 400M leaves no room for data: .* give more than 0\.41 GiB") as e:
        memory.memory_budget("400M", working=100 * MiB)  # 5 % of it kept back: 380 MiB for the 400 in use
    assert "\n" not in str(e.value)


def test_the_default_budget_keeps_a_step_back_but_not_what_the_process_holds(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * 2**30)
    monkeypatch.setattr(memory, "resident_bytes", lambda: 2**30)  # already outside "available"
    assert memory.memory_budget("", working=0)[0] == 4 * 2**30
    assert memory.memory_budget("", working=MiB)[0] == 4 * 2**30 - MiB
    assert memory.memory_budget("", processes=2, working=MiB)[0] == 2 * 2**30 - MiB


def test_parameters_are_counted_without_building_the_model():
    cfg = ScaleConfig(input_dim=40, hidden=32, layers=2, heads=4, head_hidden=48, proj_dim=16, pos_hidden=32)
    assert parameter_count(cfg) == sum(p.numel() for p in ScaleModel(cfg).parameters())


def test_a_steps_estimate_grows_with_the_batch_the_model_and_the_heads():
    cfg = ScaleConfig(input_dim=768, hidden=64, layers=1, heads=2)
    base = ssl_step_bytes(cfg, 256, 768)
    assert ssl_step_bytes(cfg, 512, 768) > 1.8 * base - 64 * MiB
    assert ssl_step_bytes(ScaleConfig(input_dim=768, hidden=256, layers=4, heads=8), 256, 768) > base
    assert clip_head_bytes(15360, 768, 4, 50, 1024) > 2 * clip_head_bytes(15360, 768, 4, 50)
    grids = resolve_grids("small")
    linear = probe_step_bytes(["linear"], grids, 50_000, 15, 768, 50, None)
    assert linear == clip_head_bytes(1024 * 15, 768, 4, 50)  # the small grid: 4 points, 1,024 videos a batch
    assert probe_step_bytes(["linear", "mlp"], grids, 50_000, 15, 768, 50, None) > linear
    assert probe_step_bytes(["linear"], grids, 100, 15, 768, 50, None) < linear  # a batch is at most the videos


# the child reports its own peak: wait4's ru_maxrss would start from this (large) test process's
# peak, which a fork (or vfork) and exec carry over; VmHWM belongs to the child's own address space
_RUN_AND_REPORT_PEAK = """
import atexit, sys
from pathlib import Path
def report():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            Path(sys.argv[1]).write_text(str(int(line.split()[1]) * 1024))
atexit.register(report)
from cli.main import main
main(sys.argv[2:])
"""


def _scale(tmp_path: Path, *args: str) -> tuple[int, str, int]:
    """`scale ARGS` in a child process: exit status, stderr, the child's peak RSS in bytes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    peak_file = tmp_path / "peak.txt"
    peak_file.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-c", _RUN_AND_REPORT_PEAK, str(peak_file), *args], cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600)
    return proc.returncode, proc.stderr, int(peak_file.read_text())


def _stays_under_the_bound(tmp_path: Path, command: list[str], out: str) -> None:
    """A bound below the process's needs is refused in one line naming what would do; that plus a
    little data is a bound the whole run, from start-up to its last write, stays under."""
    code, err, _ = _scale(tmp_path, *command, out, str(tmp_path / "refused"), "--max-memory", "64M")
    assert code == 2 and "--max-memory 64M leaves no room for data" in err and err.count("\n") == 1, err[-2000:]
    floor = float(re.search(r"give more than ([0-9.]+) GiB", err).group(1)) * 2**30
    bound = int(floor + 24 * MiB)
    code, err, peak = _scale(tmp_path, *command, out, str(tmp_path / "run"), "--max-memory", str(bound))
    assert code == 0, err[-2000:]
    assert 0 < peak <= bound, (peak / MiB, bound / MiB)
    assert (tmp_path / "run").exists()  # the run directory / result document was written


@pytest.mark.slow
@needs_proc
def test_scale_train_stays_under_max_memory(tmp_path):
    """The contract a user relies on: the peak of the whole process is under `--max-memory`."""
    make_train_store(tmp_path / "s.zarr", n=600, d=64)  # 600 x 16 x (64 x 2 + 24) B = 1.5 MB of clips
    _stays_under_the_bound(tmp_path, ["train", "--store", str(tmp_path / "s.zarr"), "--epochs", "1", "--hidden", "64",
                                      "--layers", "1", "--heads", "2", "--batch-size", "64", "--precision", "fp32",
                                      "--threads", "1", "--warmup", "0"], "--out")


@pytest.mark.slow
@needs_proc
def test_scale_probe_stays_under_max_memory(tmp_path):
    build_store(tmp_path / "eval15.zarr", per_class=100, dim=64)
    _stays_under_the_bound(tmp_path, ["probe", "--store", str(tmp_path / "eval15.zarr"), "--linear", "--epochs", "2"],
                           "--json")


@pytest.mark.slow
@needs_proc
def test_scale_probe_knn_stays_under_max_memory(tmp_path):
    build_store(tmp_path / "eval15.zarr", per_class=100, dim=64)
    _stays_under_the_bound(tmp_path, ["probe", "--store", str(tmp_path / "eval15.zarr"), "--knn", "5"], "--json")
