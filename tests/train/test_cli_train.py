"""`scale train` parses flags, calls the library and reports the run directory."""
import json

import cli.commands.train  # noqa: F401  (registers the command even before the package lists it)
from tests.train.helpers import make_train_store


def test_scale_train_cli(tmp_path, run_cli):
    make_train_store(tmp_path / "train.zarr")
    run = tmp_path / "run"
    code, out, err = run_cli("train", "--store", tmp_path / "train.zarr", "--split", "1", "--out", run, "--epochs", "2",
                             "--batch-size", "12", "--warmup", "0.5", "--hidden", "32",
                             "--precision", "fp32", "--official")
    assert code == 0, err
    assert str(run) in out and (run / "model.pt").exists()
    summary = json.loads((run / "summary.json").read_text())
    written = next(ln for ln in out.splitlines() if ln.startswith("written: "))  # the bytes the run wrote, said
    assert written.endswith(f"({summary['checkpoints_written']} checkpoint writes and model.pt)")
    assert summary["bytes_written"] == (run / "checkpoint_last.pt").stat().st_size + (run / "model.pt").stat().st_size
    conf = json.loads((run / "config.json").read_text())
    m = conf["model"]
    assert m["mcm_pool_sets"] is True and m["mask_mode"] == "bernoulli" and m["tau"] == 0.2
    assert m["heads"] == 1  # heads = hidden/32
    assert m["hidden"] == 32 and conf["train"]["epochs"] == 2
    code, out, err = run_cli("train", "--store", tmp_path / "train.zarr", "--out", run, "--epochs", "2")
    assert code == 2 and "--resume" in err and "Traceback" not in err
    code, out, err = run_cli("train", "--store", tmp_path / "missing.zarr", "--out", tmp_path / "r2")
    assert code == 2 and "not found" in err
