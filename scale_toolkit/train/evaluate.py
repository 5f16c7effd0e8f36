"""SSL metrics (MCM / SET loss and accuracy) of a model on held-out videos."""
from __future__ import annotations

import numpy as np
import torch

from scale_toolkit.model.scale import ScaleModel
from scale_toolkit.train.step import SSLForward, draw_views, ssl_batch_losses


@torch.no_grad()
def ssl_metrics(model: ScaleModel, features: np.ndarray | torch.Tensor, coords: np.ndarray | torch.Tensor,
                batch_size: int = 512, seed: int = 0, rounds: int = 1) -> dict[str, float]:
    """Mean MCM/SET losses and in-batch retrieval accuracies over ``rounds`` passes of the data.

    Uses the training objective (random 2 x K sets, random masks) in eval mode (no dropout).
    """
    dev = model.in_proj.weight.device
    feats = torch.as_tensor(features).to(dev, torch.float16)
    positions = torch.as_tensor(coords).to(dev, torch.float32)
    n, v = feats.shape[:2]
    batch = min(batch_size, n)
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    was_training = model.training
    model.eval()
    fwd = SSLForward(model)
    sums: dict[str, float] = {}
    count = 0
    try:
        for _ in range(rounds):
            order = torch.randperm(n, generator=gen, device=dev)
            for i in range(n // batch):
                idx = order[i * batch:(i + 1) * batch]
                sets, mask = draw_views(model.config, batch, v, gen, dev)
                out = ssl_batch_losses(fwd, model.config, feats, positions, idx, sets, mask, 0, batch)
                for k, val in out.items():
                    sums[k] = sums.get(k, 0.0) + float(val)
                count += 1
    finally:
        model.train(was_training)
    return {k: s / count for k, s in sums.items()}
