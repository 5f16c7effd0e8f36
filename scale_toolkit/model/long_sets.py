"""SCALE embeddings of videos of any length as the model was trained: over sets of K clips.

SCALE trains on sets of K clips (``set_size``, 8) drawn from a video. A long video (a ragged store's,
hundreds of clips) forwarded at once puts hundreds of tokens in front of a model that has only seen
K + 1: a train/test mismatch the fixed-count stores (16 training clips, 15 evaluation clips) never
have. So a video with more than K clips is embedded as the mean over *interleaved* subsets of its
clips in time order: with T clips and S = ceil(T / K) subsets, subset i holds the clips at
positions floor((j * S + i) * T / (K * S)), j = 0..K-1. Each subset is K distinct clips spread
evenly over the whole video (as the paper's evaluation clips are spread evenly along time), every
clip is in at least one subset, and the cost grows linearly with T instead of quadratically. The
rule is deterministic: no seed, the same numbers on every run.

* SET token: the mean of the subsets' SET tokens.
* refined clips: each clip's refined token averaged over the subsets that hold it.
* a video of at most K clips: one forward over all its clips (as before).

Example:
    >>> interleaved_subsets(20, 8).tolist()[0]
    [0, 2, 5, 7, 10, 12, 15, 17]
    >>> interleaved_subsets(5, 8).tolist()
    [[0, 1, 2, 3, 4]]
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def interleaved_subsets(count: int, set_size: int) -> np.ndarray:
    """Clip positions [S, K] (into a video's clips in time order) of its interleaved subsets; a video
    of at most K clips gives one row of all its clips [1, count]."""
    if count <= set_size:
        return np.arange(count, dtype=np.int64)[None]
    n_sub = -(-count // set_size)
    slot = np.arange(set_size, dtype=np.int64)[None, :] * n_sub + np.arange(n_sub, dtype=np.int64)[:, None]
    return slot * count // (set_size * n_sub)


@torch.no_grad()
def encode_in_sets(model: Any, features: torch.Tensor, positions: torch.Tensor, times: np.ndarray,
                   valid: np.ndarray, batch_sets: int = 2048) -> dict[str, torch.Tensor]:
    """{"set_token": [B, H] float32, "refined": [B, V, H] float32 (zero at invalid slots)} of padded
    videos (features [B, V, D], the model's positions [B, V, P], start times [B, V] and the valid
    slots bool [B, V], host arrays), by the rule of the module doc."""
    set_size = int(model.config.set_size)
    videos, slots, ok = [], [], []
    for b in range(features.shape[0]):
        own = np.flatnonzero(valid[b])
        own = own[np.argsort(times[b, own], kind="stable")]  # the video's clips in time order
        subsets = own[interleaved_subsets(len(own), set_size)]
        width = subsets.shape[1]
        padded = np.zeros((len(subsets), set_size), np.int64)
        padded[:, :width] = subsets
        videos.append(np.full(len(subsets), b, np.int64))
        slots.append(padded)
        ok.append(np.arange(set_size)[None, :].repeat(len(subsets), 0) < width)
    device = features.device
    sub_video = torch.from_numpy(np.concatenate(videos)).to(device)
    sub_slots = torch.from_numpy(np.concatenate(slots)).to(device)
    sub_ok = torch.from_numpy(np.concatenate(ok)).to(device)
    hidden = int(model.config.hidden)
    set_sum = torch.zeros(features.shape[0], hidden, dtype=torch.float32, device=device)
    refined_sum = torch.zeros(features.shape[0], features.shape[1], hidden, dtype=torch.float32, device=device)
    hits = torch.zeros(features.shape[0], features.shape[1], dtype=torch.float32, device=device)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(sub_video), batch_sets):
            v, s, m = (t[start:start + batch_sets] for t in (sub_video, sub_slots, sub_ok))
            out = model(features[v[:, None], s].float(), positions[v[:, None], s].float(),
                        valid=None if bool(m.all()) else m)  # full sets: exactly the training forward
            set_sum.index_add_(0, v, out["set_token"].float())
            w = m.float()
            refined_sum.index_put_((v[:, None].expand_as(s), s), out["refined"].float() * w[..., None], accumulate=True)
            hits.index_put_((v[:, None].expand_as(s), s), w, accumulate=True)
    finally:
        model.train(was_training)
    n_sub = torch.bincount(sub_video, minlength=features.shape[0]).clamp(min=1).float()
    return {"set_token": set_sum / n_sub[:, None], "refined": refined_sum / hits.clamp(min=1)[..., None]}
