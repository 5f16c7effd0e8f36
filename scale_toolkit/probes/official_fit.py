"""The trained probes of the official SCALE evaluation code (Separius/SCALE, read for facts only).

Every trained row is a per-clip classifier whose logits are ``[b, v, C]``:

* Linear: a linear layer on the clip feature x_i;
* SCALE_linear: on [x_i || SET], the SET token from the *frozen* SSL model over the clips it is given;
* MLP: h_i = D->2048->2048->512 (ReLU between), a linear layer on [x_i || h_i];
* Transformer / SCALE_ft: the SCALE predictor (random init / SSL weights) with dropout 0.1, trained
  with a linear layer on [x_i || SET].

Linear layers keep PyTorch's default initialisation. Training: each step takes a batch of videos
(512, shuffled, the last partial batch dropped) and 8 random clips of each, cross-entropy over every
clip; AdamW with the SSL run's lr and weight decay (none on 1-D parameters, biases and tokens) and
its schedule: a linear warm-up from 0 over ``warmup_fraction`` of ``ssl_epochs`` x steps-per-epoch,
then a cosine over that same span, while the probe itself trains only ``epochs`` epochs (as the
official eval does). Every epoch, the three aggregations of the official code are scored:
mean logits, mean softmax, and per-clip logits (a clip-level accuracy).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..model import ScaleModel
from ..schedules import param_groups
from ..train.ragged import sample_ragged_sets
from .fit import cosine_schedule, make_optimizer, optimizer_step, shuffled_batches
from .linear import linear_head
from .metrics import topk_accuracy
from .transformer import SSL_ONLY

MODES = ("avg_logits", "avg_probs", "logits")  # the official code's aggregations, in its order
MLP_HIDDEN, MLP_OUT = 2048, 512


@dataclass(frozen=True)
class OfficialSchedule:
    """Optimiser and schedule of the official eval: taken from the SSL run (its args.json there)."""

    lr: float = 3e-4
    weight_decay: float = 1e-4
    ssl_epochs: int = 200
    warmup_fraction: float = 0.05
    epochs: int = 60  # epochs the probe actually trains
    batch_size: int = 512
    clips_per_step: int = 8
    source: str = "official code defaults"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def schedule_from_run(train_cfg: Optional[dict[str, Any]], epochs: Optional[int]) -> OfficialSchedule:
    """The schedule of a `scale train` run's config (``meta["train"]``), or the official defaults."""
    base = OfficialSchedule() if epochs is None else OfficialSchedule(epochs=int(epochs))
    if not train_cfg:
        return base
    ssl_epochs = int(train_cfg.get("epochs", base.ssl_epochs))
    frac = float(train_cfg.get("warmup", 0.0)) / max(ssl_epochs, 1)
    return replace(base, lr=float(train_cfg.get("lr", base.lr)), weight_decay=float(train_cfg.get("wd", base.weight_decay)),
                   ssl_epochs=ssl_epochs, warmup_fraction=frac, source="the --model run's train config")


class ClipClassifier(nn.Module):
    """Per-clip logits [b, v, C] of one official probe row (see the module doc): a linear head
    (linear.linear_head's official variant) on x_i, on [x_i || h_i] for the MLP, or on [x_i || SET]
    where ``model`` (a SCALE predictor, this classifier's own) gives the SET token."""

    def __init__(self, kind: str, in_dim: int, n_classes: int, model: Optional[ScaleModel] = None,
                 batchnorm: bool = False) -> None:
        super().__init__()
        self.kind = kind
        self.model = model
        self.mlp: Optional[nn.Module] = None
        extra = 0
        if kind == "mlp":  # the official MLP (ReLU, no dropout, its output beside x): not the standard mlp_head
            self.mlp = nn.Sequential(nn.Linear(in_dim, MLP_HIDDEN), nn.ReLU(), nn.Linear(MLP_HIDDEN, MLP_HIDDEN),
                                     nn.ReLU(), nn.Linear(MLP_HIDDEN, MLP_OUT))
            extra = MLP_OUT
        elif model is not None:
            extra = model.config.hidden
        self.head = linear_head(in_dim + extra, n_classes, batchnorm, official=True)

    @property
    def frozen(self) -> bool:
        return self.kind == "scale_linear"

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        parts = [x]
        if self.mlp is not None:
            parts.append(self.mlp(x))
        elif self.model is not None:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
                set_token = self.model(x, pos)["set_token"]
            parts.append(set_token.unsqueeze(1).expand(-1, x.shape[1], -1))
        z = torch.cat(parts, dim=-1)
        b, v, d = z.shape
        logits: torch.Tensor = self.head(z.reshape(b * v, d))
        return logits.view(b, v, -1)

    def train(self, mode: bool = True) -> "ClipClassifier":
        super().train(mode)
        if self.frozen and self.model is not None:
            self.model.eval()  # frozen SSL model: no dropout, as the official --freeze
        return self

    def trainable(self) -> list[tuple[str, nn.Parameter]]:
        skip = ("model.",) if self.frozen else tuple(f"model.{p}" for p in SSL_ONLY)
        return [(n, p) for n, p in self.named_parameters() if not n.startswith(skip)]


def mode_scores(logits: torch.Tensor, labels: np.ndarray) -> dict[str, dict[str, float]]:
    """top-1/top-5 of each official aggregation: video-level for the two means, clip-level for "logits"."""
    lg = logits.cpu().double()
    n, v, c = lg.shape
    out = {"avg_logits": topk_accuracy(lg.mean(1).numpy(), labels),
           "avg_probs": topk_accuracy(lg.softmax(-1).mean(1).numpy(), labels),
           "logits": topk_accuracy(lg.reshape(n * v, c).numpy(), np.repeat(labels, v))}
    return out


def video_scores(logits: torch.Tensor, mode: str) -> np.ndarray:
    """Video-level class scores for the per-video predictions (the per-clip mode reports the mean softmax)."""
    lg = logits.cpu().double()
    scores: np.ndarray = (lg.mean(1) if mode == "avg_logits" else lg.softmax(-1).mean(1)).numpy()
    return scores


Evaluate = Callable[[ClipClassifier, int], None]


def fit_official(clf: ClipClassifier, x: torch.Tensor, pos: torch.Tensor, labels: torch.Tensor,
                 sched: OfficialSchedule, seed: int, epochs: int, evaluate: Optional[Evaluate] = None) -> ClipClassifier:
    """Train ``clf`` on train-style clips x [n, V, D] / pos [n, V, P] for ``epochs`` epochs.

    ``evaluate(clf, epoch)`` is called after every epoch (1-based). Batches, the 8 clips of each
    video and dropout all come from ``seed``. The optimiser, batches and schedule are the standard
    probes' (probes/fit.py), the clip draw the SSL trainer's (train/ragged.py); what is the official
    eval's own: the last partial batch is dropped, each step sees ``clips_per_step`` of a video's
    clips (the standard set classifiers see all of a fixed-count store's), and the schedule (its
    official arithmetic) spans the SSL run's ``ssl_epochs`` while the probe trains only ``epochs``.
    """
    dev = x.device
    labels = labels.to(dev)
    n, v = x.shape[:2]
    bs = min(sched.batch_size, n)
    total = sched.ssl_epochs * (n // bs)
    groups = [{**group, "lr": sched.lr} for group in param_groups(clf.trainable(), sched.weight_decay)]
    opt = make_optimizer(groups, "adamw")
    lr_schedule = cosine_schedule(opt, total, sched.warmup_fraction * total, official=True)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    k = min(sched.clips_per_step, v)
    for epoch in range(epochs):
        clf.train()
        for idx in shuffled_batches(n, bs, gen, dev, drop_last=True):
            # k distinct random clips of each video: the rule of the SSL trainer and the standard ragged sets
            keep = sample_ragged_sets(torch.full((len(idx),), v), k, gen, sets=1)[:, 0].to(dev)
            logits = clf(x[idx[:, None], keep].float(), pos[idx[:, None], keep].float())
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[idx].repeat_interleave(k))
            optimizer_step(opt, lr_schedule, loss)
        if evaluate is not None:
            evaluate(clf, epoch + 1)
    clf.eval()
    return clf
