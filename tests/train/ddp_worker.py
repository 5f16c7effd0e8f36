"""Run under `torchrun --nproc-per-node 2`: trains the configs given as JSON in argv[1]."""
import json
import sys

import torch.distributed as dist

import scale_toolkit.memory
import scale_toolkit.train.trainer
from scale_toolkit.train import TrainConfig, train

if __name__ == "__main__":
    # --max-memory as a budget for the data alone, as the test's single-process runs (tests/conftest.py)
    scale_toolkit.memory.resident_bytes = lambda: 0
    scale_toolkit.train.trainer.ssl_step_bytes = lambda *args: 0
    dist.init_process_group("gloo")
    for c in json.loads(sys.argv[1]):
        train(TrainConfig(**c))
    dist.destroy_process_group()
