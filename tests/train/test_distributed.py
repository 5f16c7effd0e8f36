"""DDP under torchrun (2 CPU processes, gloo) equals the single-process run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scale_toolkit.train import TrainConfig, train
from tests.train.helpers import TINY_MODEL, assert_same_weights, make_train_store

# windows sized in bytes of data (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("budget_for_data_only")

MODES = ("fixed", "bernoulli", "streamed")


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path):
    make_train_store(tmp_path / "train.zarr", n=48)
    confs = []
    for mode in MODES:  # "streamed": a split over --max-memory, each rank holding its rows of each window
        base = dict(store=str(tmp_path / "train.zarr"), split=1, epochs=2, batch_size=12, warmup=0.5,
                    precision="fp32", model=dict(**TINY_MODEL, mask_mode=mode.replace("streamed", "fixed"), input_dim=24),
                    max_memory="20000" if mode == "streamed" else "")
        train(TrainConfig(**base, out=str(tmp_path / f"single_{mode}")))
        confs.append({**base, "out": str(tmp_path / f"ddp_{mode}")})
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", str(Path(__file__).parent / "ddp_worker.py"),
                        json.dumps(confs)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for mode in MODES:
        one = torch.load(tmp_path / f"single_{mode}" / "checkpoint_last.pt", weights_only=True)
        two = torch.load(tmp_path / f"ddp_{mode}" / "checkpoint_last.pt", weights_only=True)
        assert two["meta"]["effective"]["world_size"] == 2 and two["meta"]["effective"]["batch_size"] == 12
        assert ("streamed" in two["meta"]["store"]) == ("streamed" in one["meta"]["store"]) == (mode == "streamed")
        assert_same_weights(one["state_dict"], two["state_dict"], what=mode)
        m1 = [json.loads(x) for x in (tmp_path / f"single_{mode}" / "metrics.jsonl").read_text().splitlines()]
        m2 = [json.loads(x) for x in (tmp_path / f"ddp_{mode}" / "metrics.jsonl").read_text().splitlines()]
        for a, b in zip(m1, m2):
            for key in ("loss", "mcm_loss", "set_loss", "mcm_acc", "set_acc"):
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), (mode, key)
