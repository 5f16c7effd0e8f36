"""The library leaves process-wide state as it found it: warning filters, matplotlib's backend, torch's threads."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from scale_toolkit.model import ScaleConfig
from scale_toolkit.runtime import torch_threads
from scale_toolkit.train import TrainConfig, train
from tests.train.helpers import TINY_MODEL, make_train_store

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, **env) -> str:
    """Run `code` in a fresh interpreter (nothing imported yet) and return its stdout."""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", **env})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_the_store_adds_no_warning_filter():
    out = run_python("import warnings, zarr, numpy\n"
                     "before = list(warnings.filters)\n"
                     "import scale_toolkit.store\n"
                     "print(warnings.filters == before)")
    assert out == "True"


def test_pictures_keep_the_callers_matplotlib_backend(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    rows = [dict(epoch=e, loss=1.0 / e, mcm_loss=0.5, set_loss=0.5, mcm_acc=0.1 * e, set_acc=0.2, lr=1e-3) for e in (1, 2)]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run_python(
        "import sys, numpy as np, matplotlib\n"
        "from scale_toolkit.train.plots import plot_curves\n"
        "from scale_toolkit.demo.pictures import confusion_png\n"
        f"plot_curves({str(metrics)!r}, {str(tmp_path / 'curves.png')!r})\n"
        "from pathlib import Path\n"
        f"confusion_png([('a', np.array([0, 1]), np.array([0, 0]))], ['x', 'y'], Path({str(tmp_path / 'c.png')!r}))\n"
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)",
        MPLBACKEND="pdf")
    assert out == "pdf False"
    for name in ("curves.png", "c.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_torch_threads_are_restored_after_the_block_and_after_training(tmp_path):
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    make_train_store(tmp_path / "train.zarr", n=24)
    config = TrainConfig(store=str(tmp_path / "train.zarr"), split=1, out=str(tmp_path / "run"), epochs=1, batch_size=12,
                         threads=1, model=ScaleConfig(**TINY_MODEL))
    train(config)
    assert torch.get_num_threads() == before
    assert np.isfinite(json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["loss"])
