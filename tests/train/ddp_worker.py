"""Run under `torchrun --nproc-per-node 2`: trains the configs given as JSON in argv[1]."""
import json
import sys

import torch.distributed as dist

from scale_toolkit.train import TrainConfig, train

if __name__ == "__main__":
    dist.init_process_group("gloo")
    for c in json.loads(sys.argv[1]):
        train(TrainConfig(**c))
    dist.destroy_process_group()
