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

import copy
from dataclasses import asdict, dataclass, replace
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..schedules import param_groups, warmup_cosine
from .metrics import topk_accuracy

MODES = ("avg_logits", "avg_probs", "logits")  # the official code's aggregations, in its order
MLP_HIDDEN, MLP_OUT = 2048, 512
# parts of ScaleModel the official eval deletes before probing (SSL only)
_SSL_ONLY = ("pred_head", "target_head", "target_norm", "set_head_a", "set_head_b", "msk_token")


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

    def to_dict(self) -> dict:
        return asdict(self)


def schedule_from_run(train_cfg: Optional[dict], epochs: Optional[int]) -> OfficialSchedule:
    """The schedule of a `scale train` run's config (``meta["train"]``), or the official defaults."""
    base = OfficialSchedule() if epochs is None else OfficialSchedule(epochs=int(epochs))
    if not train_cfg:
        return base
    ssl_epochs = int(train_cfg.get("epochs", base.ssl_epochs))
    frac = float(train_cfg.get("warmup", 0.0)) / max(ssl_epochs, 1)
    return replace(base, lr=float(train_cfg.get("lr", base.lr)), weight_decay=float(train_cfg.get("wd", base.weight_decay)),
                   ssl_epochs=ssl_epochs, warmup_fraction=frac, source="the --model run's train config")


class ClipClassifier(nn.Module):
    """Per-clip logits [b, v, C] of one official probe row (see the module doc)."""

    def __init__(self, kind: str, in_dim: int, n_classes: int, model: Optional[nn.Module] = None,
                 batchnorm: bool = False):
        super().__init__()
        self.kind = kind
        self.model = model
        self.mlp = None
        extra = 0
        if kind == "mlp":
            self.mlp = nn.Sequential(nn.Linear(in_dim, MLP_HIDDEN), nn.ReLU(), nn.Linear(MLP_HIDDEN, MLP_HIDDEN),
                                     nn.ReLU(), nn.Linear(MLP_HIDDEN, MLP_OUT))
            extra = MLP_OUT
        elif model is not None:
            extra = model.config.hidden
        self.norm = nn.BatchNorm1d(in_dim + extra, affine=False) if batchnorm else nn.Identity()
        self.linear = nn.Linear(in_dim + extra, n_classes)

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
        return self.linear(self.norm(z.reshape(b * v, d))).view(b, v, -1)

    def train(self, mode: bool = True) -> "ClipClassifier":
        super().train(mode)
        if self.frozen and self.model is not None:
            self.model.eval()  # frozen SSL model: no dropout, as the official --freeze
        return self

    def trainable(self) -> list[tuple[str, nn.Parameter]]:
        skip = ("model.",) if self.frozen else tuple(f"model.{p}" for p in _SSL_ONLY)
        return [(n, p) for n, p in self.named_parameters() if not n.startswith(skip)]


def make_classifier(kind: str, in_dim: int, n_classes: int, model: Optional[nn.Module], batchnorm: bool) -> ClipClassifier:
    """A fresh classifier; the SCALE rows get their own copy of ``model`` (the caller's stays untouched)."""
    return ClipClassifier(kind, in_dim, n_classes, copy.deepcopy(model) if model is not None else None, batchnorm)


@torch.no_grad()
def clip_logits(clf: ClipClassifier, x: torch.Tensor, pos: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Eval-mode logits [n, v, C] on all given clips."""
    clf.eval()
    return torch.cat([clf(x[i:i + batch].float(), pos[i:i + batch].float()).float() for i in range(0, len(x), batch)])


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
    return (lg.mean(1) if mode == "avg_logits" else lg.softmax(-1).mean(1)).numpy()


Evaluate = Callable[[ClipClassifier, int], None]


def fit_official(clf: ClipClassifier, x: torch.Tensor, pos: torch.Tensor, labels: torch.Tensor,
                 sched: OfficialSchedule, seed: int, epochs: int, evaluate: Optional[Evaluate] = None) -> ClipClassifier:
    """Train ``clf`` on train-style clips x [n, V, D] / pos [n, V, P] for ``epochs`` epochs.

    ``evaluate(clf, epoch)`` is called after every epoch (1-based). Batches, the 8 clips of each
    video and dropout all come from ``seed``.
    """
    dev = x.device
    labels = labels.to(dev)
    n, v = x.shape[:2]
    bs = min(sched.batch_size, n)
    ipe = n // bs
    total = sched.ssl_epochs * ipe
    warm = sched.warmup_fraction * total
    opt = torch.optim.AdamW(param_groups(clf.trainable(), sched.weight_decay), lr=sched.lr)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    k = min(sched.clips_per_step, v)
    step = 0
    for epoch in range(epochs):
        clf.train()
        order = torch.randperm(n, generator=gen)
        for i in range(ipe):
            idx = order[i * bs:(i + 1) * bs].to(dev)
            keep = torch.rand(len(idx), v, generator=gen).argsort(1)[:, :k].to(dev)
            xb = x[idx[:, None], keep].float()
            pb = pos[idx[:, None], keep].float()
            for g in opt.param_groups:
                g["lr"] = sched.lr * warmup_cosine(step, total, warm, official=True)
            logits = clf(xb, pb)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[idx].repeat_interleave(k))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        if evaluate is not None:
            evaluate(clf, epoch + 1)
    clf.eval()
    return clf
