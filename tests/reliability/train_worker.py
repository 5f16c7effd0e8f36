"""Subprocess for test_kill_train: `train()` stopped at a chosen point so a test can SIGKILL it there.

argv: MODE TRAIN_CONFIG_JSON AT, MODE one of
  pause-step  after global step AT, touch RUN/.step-AT and wait (the kill lands mid-epoch)
  pause-save  write half of checkpoint number AT (1, 2, ...) into its temp file, touch
              RUN/.half-written-AT and wait (the kill lands while the temp file is half written)
The worker waits instead of sleeping a guessed time, so the kill point does not depend on how
loaded the machine is.
"""
from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import torch

import scale_toolkit.model.io as model_io
from scale_toolkit.train import TrainConfig, train

_real_save = torch.save


def _wait_for_kill() -> None:
    time.sleep(3600)


def main() -> None:
    mode, cfg, at = sys.argv[1], TrainConfig.from_dict(json.loads(sys.argv[2])), int(sys.argv[3])
    run = Path(cfg.out)
    progress = None
    if mode == "pause-step":
        def progress(event):
            if event["event"] == "step" and event["step"] == at:
                (run / f".step-{at}").touch()
                _wait_for_kill()
    elif mode == "pause-save":
        writes = [0]

        def slow_save(obj, f, *args, **kwargs):
            if not (isinstance(obj, dict) and obj.get("format") == "scale-checkpoint" and hasattr(f, "write")):
                return _real_save(obj, f, *args, **kwargs)
            writes[0] += 1
            if writes[0] != at:
                return _real_save(obj, f, *args, **kwargs)
            buf = io.BytesIO()
            _real_save(obj, buf, *args, **kwargs)
            data = buf.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            (run / f".half-written-{at}").touch()
            _wait_for_kill()

        model_io.torch.save = slow_save  # atomic_save calls torch.save(obj, open temp file)
    train(cfg, progress=progress)


if __name__ == "__main__":
    main()
