"""What one probe step holds besides the clips: what `--max-memory` keeps back for it.

Estimates from the step's shapes, fitted on this machine's measurements (peak RSS growth of a
grid's epoch and its predictions, `/proc/self/status` VmHWM, fp32, AMD EPYC AVX2; batches of
1,024 videos x 8-15 clips, D 384-768, 50-101 classes, linear and MLP heads) with 15 % on top:
1.2-1.4x the measured growth (benchmarks/RESULTS.md, "--max-memory bounds the process"). A
clip head's batch costs its gathered, float32 and normalised inputs and, per grid point trained
together, its logits (and an MLP's hidden layer) with their gradients; a set classifier's step is
an SSL step's transformer part (train/footprint.py), one grid point at a time.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..train.footprint import parameter_count
from .rows import ROW

_FIXED = 32 << 20
_KNN_PIECE_VIDEOS = 256  # the k-NN rows' means are taken this many videos at a time (data.load_mean_view)


def clip_head_bytes(batch_clips: int, dim: int, heads: int, classes: int, hidden: int = 0) -> int:
    """One step of `heads` clip heads trained together on `batch_clips` clips.

    >>> round(clip_head_bytes(1024 * 15, 768, 4, 50) / 2**20)  # measured 367 MiB
    482
    """
    return _FIXED + int(1.15 * batch_clips * (28 * dim + 26 * heads * classes + 13 * heads * hidden))


def set_classifier_bytes(config: Any, batch_videos: int, clips: int, classes: int) -> int:
    """One step of a Transformer / SCALE_ft classifier on `batch_videos` videos of `clips` clips."""
    per_token = 12 * config.input_dim + int(20 * config.mlp_ratio * config.hidden) * config.layers + 12 * classes
    return _FIXED + 16 * parameter_count(config) + batch_videos * clips * per_token


def probe_step_bytes(rows: list[str], grids: Mapping[str, Any], n_videos: int, n_clips: int, dim: int,
                     classes: int, transformer_config: Any) -> int:
    """The largest step any of `rows` takes on `n_videos` videos of `n_clips` clips of `dim` dims."""
    need = clip_head_bytes(_KNN_PIECE_VIDEOS * n_clips, dim, 0, 0)
    for row in rows:
        grid = grids.get(row)
        if grid is None:
            continue
        batch = min(max(grid.batch_size), n_videos)
        if ROW[row].method == "set_classifier":
            need = max(need, set_classifier_bytes(transformer_config, batch, n_clips, classes))
        elif ROW[row].method == "clip_head":
            heads = len(grid.lr) * len(grid.weight_decay)
            need = max(need, clip_head_bytes(batch * n_clips, dim, heads, classes, max(grid.hidden)))
    return need
