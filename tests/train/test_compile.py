"""`scale train --compile`: the compiled step trains the same model as the eager one."""
import json
import shutil

import pytest
import torch

from scale_toolkit.errors import ScaleError
from scale_toolkit.model import ScaleConfig
from scale_toolkit.train import TrainConfig, train
from tests.train.helpers import TINY_MODEL, assert_same_weights, make_train_store

slow = pytest.mark.slow  # up to a minute of compiling
needs_compiler = pytest.mark.skipif(not (shutil.which("c++") or shutil.which("g++")), reason="torch.compile needs a C++ compiler")


def _cfg(tmp_path, out, **kw):
    return TrainConfig(store=str(tmp_path / "train.zarr"), out=str(tmp_path / out), epochs=2, batch_size=12, warmup=1.0,
                       precision="fp32", model=ScaleConfig(**TINY_MODEL), **kw)


@slow
@needs_compiler
def test_compiled_step_matches_eager(tmp_path):
    make_train_store(tmp_path / "train.zarr")
    train(_cfg(tmp_path, "eager"))
    train(_cfg(tmp_path, "compiled", compile=True))
    rows = {name: [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
            for name in ("eager", "compiled")}
    for a, b in zip(rows["eager"], rows["compiled"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["mcm_acc"] == pytest.approx(b["mcm_acc"], abs=1e-6)
    ea = torch.load(tmp_path / "eager" / "checkpoint_last.pt", weights_only=True)["state_dict"]
    co = torch.load(tmp_path / "compiled" / "checkpoint_last.pt", weights_only=True)["state_dict"]
    assert_same_weights(ea, co, rtol=1e-4, atol=1e-5)


@slow
@needs_compiler
def test_compile_failure_is_one_line(tmp_path, monkeypatch):
    import torch._inductor.config as inductor_config

    make_train_store(tmp_path / "train.zarr")
    torch._dynamo.reset()
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    monkeypatch.setattr(inductor_config.cpp, "cxx", ("/nonexistent/c++",))
    with pytest.raises(ScaleError, match="torch.compile failed .*train without --compile"):
        train(_cfg(tmp_path, "broken", compile=True))
    torch._dynamo.reset()


def test_compile_under_torchrun_is_refused_before_loading(tmp_path):
    from scale_toolkit.train.distributed import DistInfo
    from scale_toolkit.train.trainer import _train

    with pytest.raises(ScaleError, match="single process only"):  # no store exists: refused before reading it
        _train(_cfg(tmp_path, "ddp", compile=True), None, None, DistInfo(rank=0, world_size=2), torch.device("cpu"))
