"""Subprocess for test_kill_train: `train()` made slow and observable so a test can SIGKILL it at a chosen point.

argv: MODE TRAIN_CONFIG_JSON, MODE one of
  slow-step  each step touches RUN/.step-<global step> and then sleeps 0.1 s (kill mid-epoch)
  slow-save  each checkpoint touches RUN/.writing-<n> (n = 1, 2, ...) and is written into its temp
             file in 40 pieces with 0.05 s pauses (kill while the temp file is half written)
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


def main() -> None:
    mode, cfg = sys.argv[1], TrainConfig.from_dict(json.loads(sys.argv[2]))
    run = Path(cfg.out)
    progress = None
    if mode == "slow-step":
        def progress(event):
            if event["event"] == "step":
                (run / f".step-{event['step']}").touch()
                time.sleep(0.1)
    elif mode == "slow-save":
        writes = [0]

        def slow_save(obj, f, *args, **kwargs):
            if not (isinstance(obj, dict) and obj.get("format") == "scale-checkpoint" and hasattr(f, "write")):
                return _real_save(obj, f, *args, **kwargs)
            buf = io.BytesIO()
            _real_save(obj, buf, *args, **kwargs)
            data = buf.getvalue()
            writes[0] += 1
            (run / f".writing-{writes[0]}").touch()
            piece = max(1, len(data) // 40)
            for i in range(0, len(data), piece):
                f.write(data[i:i + piece])
                f.flush()
                time.sleep(0.05)

        model_io.torch.save = slow_save  # atomic_save calls torch.save(obj, open temp file)
    train(cfg, progress=progress)


if __name__ == "__main__":
    main()
