"""Training loops shared by the probes: per-clip heads (several grid points at once) and set classifiers.

Everything runs on tensors already on the device; batches are drawn by index with a seeded
generator, so a run is reproducible for a given seed and device.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ScaleError
from ..schedules import warmup_cosine
from ..store.windows import block_shuffled, windows

if TYPE_CHECKING:
    from .data import StoreClips
    from .linear import InputScale
    from .set_inputs import SetInputs

Progress = Optional[Callable[[str, int, int], None]]  # (task, done, total)
# early stopping (probes/early_stop.py): (grid point index, epochs done, the point in eval mode) -> stop it now?
StopCheck = Optional[Callable[[int, int, nn.Module], bool]]
OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True)
class TrainSetting:
    """One point of a probe's hyper-parameter grid."""

    lr: float
    weight_decay: float
    batch_size: int  # videos per step (a clip head sees batch_size x V clips)
    optimizer: str = "adamw"
    epochs: int = 100
    warmup_epochs: float = 0.0
    hidden: int = 0  # MLP width (MLP only)
    dropout: float = 0.0  # MLP dropout (MLP only)
    batchnorm: bool = False  # BatchNorm without affine in front of the head (clip heads only)
    epochs_run: int = 0  # early stopping: the epochs of the schedule actually run (0: all of them)

    @property
    def last_epoch(self) -> int:
        """The epoch training ends after: `epochs_run` of the cosine over `epochs`, or all of them."""
        return self.epochs_run or self.epochs

    def to_dict(self) -> dict:
        """The fields (`epochs_run` only where early stopping cut the schedule, so results without it read as before)."""
        from dataclasses import asdict

        out = asdict(self)
        if not self.epochs_run:
            del out["epochs_run"]
        return out


class ClipTable:
    """Per-clip head inputs for some videos of a view: the concatenation of per-clip parts [N, V, d]
    and per-video parts [N, d] (e.g. the SET token, repeated for every clip), at rows `rows` of
    the parts (default: all of them).

    The parts are the view's own tensors, never copied: the table names its videos by index. When
    the table's float32 form fits in `materialize_bytes` it is built once as [n*V, dim] (fast
    batches, full-batch steps without any copy); above that, each batch gathers its rows from the
    float16 parts, so a large split costs its float16 clips once (the view) instead of a float16
    copy plus a float32 copy (measured at 20k videos x 15 x 768: 2.6 GB peak with both, for a
    445 MB store). The values a head sees are the same either way.

    Example:
        >>> t = ClipTable([torch.zeros(4, 15, 8), torch.ones(4, 3)])
        >>> t.n_videos, t.n_clips, t.dim, t.clips(torch.tensor([0, 59])).shape
        (4, 15, 11, torch.Size([2, 11]))
        >>> lazy = ClipTable([torch.arange(8.).view(4, 2, 1)], rows=torch.tensor([3, 1]), materialize_bytes=0)
        >>> lazy.flat is None, lazy.videos(torch.tensor([0])).flatten().tolist(), lazy.clips(torch.tensor([3])).tolist()
        (True, [6.0, 7.0], [[3.0]])
    """

    def __init__(self, parts: Sequence[torch.Tensor], rows: Optional[torch.Tensor] = None,
                 materialize_bytes: int = 256 << 20):
        if not parts:
            raise ValueError("a ClipTable needs at least one part")
        clip_parts = [p for p in parts if p.dim() == 3]
        if not clip_parts:
            raise ValueError("a ClipTable needs at least one per-clip part [n, V, d]")
        self.parts = list(parts)
        self.device = parts[0].device
        self.rows = torch.arange(int(parts[0].shape[0]), device=self.device) if rows is None else rows.to(self.device)
        self.n_videos = int(self.rows.shape[0])
        self.n_clips = int(clip_parts[0].shape[1])
        self.dim = int(sum(p.shape[-1] for p in parts))
        self.flat: Optional[torch.Tensor] = None
        # a part left in the store (probes/data.py StoreClips): epochs stream it a window of videos at a time
        self.stored: Optional[StoreClips] = next((cast("StoreClips", p) for p in self.parts
                                                  if hasattr(p, "window_videos")), None)
        self.piece_videos = 512 if self.stored is None else min(512, self.stored.window_videos)  # videos read at once
        if self.stored is not None:  # held in float32 only where that fits the stream's window
            materialize_bytes = min(materialize_bytes, self.stored.window_videos * self.n_clips * self.dim * 4)
        if self.n_videos * self.n_clips * self.dim * 4 <= materialize_bytes:
            self.flat = self.videos(torch.arange(self.n_videos, device=self.device)).reshape(-1, self.dim).contiguous()
            self.parts, self.stored = [], None  # every read goes to `flat` now

    def batches(self, batch: int, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch's shuffled batches of `batch` clips: (inputs [b, dim] float32, their flat clip
        indices). In memory, a permutation of every clip; streamed from the store, whole blocks of
        videos in a random order, a window at a time, the clips shuffled within each window, cut into
        the same number of batches of the same sizes (only which clips meet in a batch differs)."""
        if self.stored is None:
            for idx in shuffled_batches(self.n_videos * self.n_clips, batch, gen, self.device):
                yield self.clips(idx), idx
            return
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen)))
        store_rows = self.stored.rows_here[self.rows.cpu().numpy()]
        in_store_order = np.argsort(store_rows, kind="stable")
        sorted_rows = store_rows[in_store_order]
        order = block_shuffled(sorted_rows, self.stored.store.rows_per_chunk, rng)
        pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        held, emitted = 0, 0
        for window in windows(order, self.stored.window_videos):
            vid = torch.as_tensor(in_store_order[np.searchsorted(sorted_rows, window)], device=self.device)
            x = self.videos(vid).reshape(-1, self.dim)
            idx = (vid.unsqueeze(1) * self.n_clips + torch.arange(self.n_clips, device=self.device)).reshape(-1)
            perm = torch.randperm(len(x), generator=gen).to(self.device)
            for sel in perm.split(batch):
                while len(sel):
                    take = sel[:batch - held]
                    pending.append((x[take], idx[take]))
                    held, sel = held + len(take), sel[len(take):]
                    if held == batch:
                        yield _joined([p[0] for p in pending], 0), torch.cat([p[1] for p in pending])
                        pending, held, emitted = [], 0, emitted + 1
            del x
        if held and (held >= 2 or not emitted):  # as `shuffled_batches`: no last batch of one clip after others
            yield _joined([p[0] for p in pending], 0), torch.cat([p[1] for p in pending])

    def clips(self, flat: torch.Tensor) -> torch.Tensor:
        """Rows for flat clip indices (video * V + clip): [b, dim] float32."""
        if self.flat is not None:
            return self.flat[flat]
        vid, clip = self.rows[flat // self.n_clips], flat % self.n_clips
        return _joined([(p[vid, clip] if p.dim() == 3 else p[vid]).float() for p in self.parts])

    def videos(self, vid: torch.Tensor) -> torch.Tensor:
        """All clips of some videos: [b, V, dim] float32."""
        if self.flat is not None:
            return self.flat.view(self.n_videos, self.n_clips, self.dim)[vid]
        out = []
        for p in self.parts:
            x = p[self.rows[vid]].float()
            out.append(x if p.dim() == 3 else x.unsqueeze(1).expand(-1, self.n_clips, -1))
        return _joined(out)

    def mean_square(self, videos_per_piece: int = 128) -> torch.Tensor:
        """The mean of the squared entries of the whole table (a float32 scalar), in pieces when it is
        not materialised (accumulated in float64, so no piece's rounding drifts the total)."""
        if self.flat is not None:
            return self.flat.pow(2).mean()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        videos_per_piece = min(videos_per_piece, self.piece_videos)
        for start in range(0, self.n_videos, videos_per_piece):
            vid = torch.arange(start, min(start + videos_per_piece, self.n_videos), device=self.device)
            total += self.videos(vid).double().pow(2).sum()
        return (total / max(1, self.n_videos * self.n_clips * self.dim)).float()


class RowsOf:
    """Some rows of a view's tensor, named by index instead of copied: ``x[idx]`` is
    ``tensor[rows[idx]]``; what set classifiers train and predict on (a split's float16 clips are
    held once, by the view).

    Example:
        >>> x = RowsOf(torch.arange(10.).view(5, 2), torch.tensor([4, 0]))
        >>> x.shape, x[torch.tensor([1])].tolist(), x[0:1].tolist()
        ((2, 2), [[0.0, 1.0]], [[8.0, 9.0]])
    """

    def __init__(self, tensor: torch.Tensor, rows: torch.Tensor) -> None:
        self.tensor, self.rows = tensor, rows.to(tensor.device)
        self.shape = (int(rows.shape[0]), *tensor.shape[1:])
        self.device = tensor.device

    def __getitem__(self, idx: torch.Tensor | slice) -> torch.Tensor:
        return self.tensor[self.rows[idx]]

    def pieces(self, videos: int = 4096) -> Iterator[torch.Tensor]:
        """The rows in order, `videos` at a time (for statistics over all of them)."""
        for start in range(0, self.shape[0], videos):
            yield self[start:start + videos]


def _joined(parts: list[torch.Tensor], dim: int = -1) -> torch.Tensor:
    """The parts joined along `dim` (default: side by side); a single part as it is (a batch-sized copy saved)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=dim)


def make_optimizer(groups: list[dict], name: str) -> torch.optim.Optimizer:
    """AdamW, or SGD with momentum 0.9, over parameter groups that carry their own lr and weight decay."""
    if name == "adamw":
        return torch.optim.AdamW(groups)
    if name == "sgd":
        return torch.optim.SGD(groups, momentum=0.9)
    raise ScaleError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def cosine_schedule(opt: torch.optim.Optimizer, total: int, warmup: float, official: bool = False
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """The shared schedule (scale_toolkit/schedules.py; ``official``: the official eval's arithmetic) as a
    factor on each group's lr, stepped per batch."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: warmup_cosine(step, total, warmup, official=official))


def shuffled_batches(n: int, batch_size: int, gen: torch.Generator, device: torch.device, drop_last: bool = False
                     ) -> list[torch.Tensor]:
    """One epoch's batches of indices into `n` items, from one seeded permutation; a last batch of one
    is dropped, or with `drop_last` any last partial batch (the official eval's loader)."""
    perm = torch.randperm(n, generator=gen)
    chunks = list(perm.split(batch_size))
    if drop_last:
        chunks = chunks[:n // batch_size]
    elif len(chunks) > 1 and len(chunks[-1]) < 2:  # BatchNorm cannot train on a batch of one
        chunks = chunks[:-1]
    return [c.to(device) for c in chunks]


def _stacked_losses(norm: nn.Module, heads: Sequence[nn.Sequential], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each head's mean clip cross-entropy [G] for the same input, computed as whole-grid tensors.

    Heads are ``Sequential(norm, Linear)`` or ``Sequential(norm, Linear, GELU, Dropout, Linear)``
    with a parameter-free norm (BatchNorm without affine, or a fixed scale): the norm runs once (all
    heads see the same batches, so their statistics are identical), the first layers of all heads
    are one matmul [b, d] x [d, G*h], the activation one call on [b, G*h] and the MLP's second
    layers one batched matmul. Nothing is split per head, so the backward pass adds no copies (per
    head chunks cost a concatenation of the [b, G*h] gradient every step: 5 % of an MLP step).
    Parameters stay per head (each its own optimiser group); only their concatenation is built
    here, which is small next to the batch.
    """
    x = norm(x)
    first = [cast(nn.Linear, h[1]) for h in heads]
    z = F.linear(x, torch.cat([f.weight for f in first]), torch.cat([f.bias for f in first]))
    count, rows = len(heads), x.shape[0]
    if len(heads[0]) == 2:  # linear heads: z holds every head's logits
        logits = z.view(rows, count, -1)
    else:
        act, drop = heads[0][2], cast(nn.Dropout, heads[0][3])
        hidden = act(z)
        if drop.p > 0:  # one mask for the [b, G*h] block: each head's units still drop independently with p
            hidden = drop(hidden)
        second = [cast(nn.Linear, h[4]) for h in heads]
        weight = torch.stack([s.weight for s in second])  # [G, C, h]
        bias = torch.stack([s.bias for s in second])  # [G, C]
        logits = torch.baddbmm(bias.unsqueeze(1), hidden.view(rows, count, -1).transpose(0, 1),
                               weight.transpose(1, 2)).transpose(0, 1)  # [b, G, C]
    logp = logits.log_softmax(-1)
    return -logp.gather(-1, y.view(rows, 1, 1).expand(rows, count, 1)).squeeze(-1).mean(0)


def _check_heads(heads: Sequence[nn.Module]) -> None:
    for h in heads:
        if not (isinstance(h, nn.Sequential) and isinstance(h[1], nn.Linear) and not list(h[0].parameters())):
            raise ValueError("clip heads must be Sequential(parameter-free norm, Linear, ...)")
        if len(h) not in (2, 5) or (len(h) == 5 and not isinstance(h[4], nn.Linear)):
            raise ValueError("clip heads are linear (norm, Linear) or MLP (norm, Linear, act, Dropout, Linear)")
    sequences = [cast(nn.Sequential, h) for h in heads]  # checked above
    if len({tuple(type(m) for m in h) for h in sequences}) > 1 or len({h[1].out_features for h in sequences}) > 1:
        raise ValueError("heads trained together must have the same shape")


def fit_clip_heads(table: ClipTable, labels: torch.Tensor, heads: Sequence[nn.Sequential],
                   lr_wd: Sequence[tuple[float, float]], setting: TrainSetting, seed: int,
                   progress: Progress = None, task: str = "train", stop: StopCheck = None) -> list[nn.Module]:
    """Train several per-clip heads at once on the same batches (one per (lr, wd) pair).

    The loss is the sum of each head's mean clip cross-entropy; heads share no parameters and each
    has its own optimiser parameter group, so this is exactly training them one by one, in one pass
    over the data. A batch holds `setting.batch_size` videos' worth of clips; when one batch covers
    the whole table, every step is a full-batch step. Returns the heads, trained, in eval mode.
    """
    if len(heads) != len(lr_wd):
        raise ValueError("one (lr, wd) pair per head")
    _check_heads(heads)
    device = table.device
    labels = labels.to(device)
    n = table.n_videos * table.n_clips
    gen = torch.Generator().manual_seed(seed)
    groups = [{"params": list(h.parameters()), "lr": lr, "weight_decay": wd} for h, (lr, wd) in zip(heads, lr_wd)]
    opt = make_optimizer(groups, setting.optimizer)
    batch = setting.batch_size * table.n_clips
    full_batch = batch >= n and table.flat is not None
    steps_per_epoch = 1 if full_batch else len(shuffled_batches(n, batch, torch.Generator().manual_seed(0), torch.device("cpu")))
    total = steps_per_epoch * setting.epochs
    sched = cosine_schedule(opt, total, int(round(setting.warmup_epochs * steps_per_epoch)))
    shown = steps_per_epoch * setting.last_epoch  # the progress bar's length: the steps this run takes at most
    for h in heads:
        h.to(device).train()
    if hasattr(heads[0][0], "fit_mean_square"):  # InputScale: one scalar from every training input
        mean_square = table.mean_square()
        for h in heads:
            cast("InputScale", h[0]).fit_mean_square(mean_square)
    clip_labels = labels.repeat_interleave(table.n_clips)
    norm, active = heads[0][0], list(range(len(heads)))
    stopped: dict[int, nn.Module] = {}
    step = 0
    for epoch in range(1, setting.last_epoch + 1):
        batches = [(table.flat, None)] if full_batch else table.batches(batch, gen)
        for x, idx in batches:
            assert x is not None  # full-batch steps only where the table is materialised
            y = clip_labels if idx is None else clip_labels[idx]
            losses = _stacked_losses(norm, [heads[i] for i in active], x, y)
            optimizer_step(opt, sched, losses.sum())
            step += 1
            if not bool(torch.isfinite(losses).all()):
                active = _drop_diverged(heads, active, losses)
            if not active:
                break
        if stop is not None and epoch < setting.last_epoch:
            for i in list(active):
                now = _eval_copy(heads[i], norm)
                if stop(i, epoch, now):
                    stopped[i] = now
                    active.remove(i)  # no gradient reaches it again, so no optimiser step moves it
        if progress:
            progress(task, step, shown)
        if not active:
            break
    norm_state = norm.state_dict()
    for h in heads:
        h[0].load_state_dict(norm_state)  # the shared norm's running statistics
        h.eval()
    return [stopped.get(i, h) for i, h in enumerate(heads)]


def _eval_copy(head: nn.Sequential, norm: nn.Module) -> nn.Sequential:
    """A copy of a clip head as it is now, in eval mode, with the shared norm's statistics so far."""
    out = copy.deepcopy(head)
    out[0].load_state_dict(norm.state_dict())
    return out.eval()


@torch.no_grad()
def _drop_diverged(heads: Sequence[nn.Module], active: list[int], losses: torch.Tensor) -> list[int]:
    """Early stopping, only where it cannot change a result: a head whose loss is not finite.

    Its gradients were not finite, so the step just taken made its weights NaN (AdamW and SGD
    both carry a NaN into every later step): its predictions would be NaN and `validation_score`
    ranks it last whatever happens next. Such a head is set to NaN outright and leaves the
    batch; the others train on exactly as before (their losses and gradients never mix).
    """
    keep = []
    for i, ok in zip(active, torch.isfinite(losses).tolist()):
        if ok:
            keep.append(i)
        else:
            for p in heads[i].parameters():
                p.fill_(float("nan"))
                p.grad = None  # no optimiser step touches it again
    return keep


def optimizer_step(opt: torch.optim.Optimizer, sched, loss: torch.Tensor) -> None:
    """One optimisation step and one scheduler step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()


@torch.no_grad()
def predict_clip_head(head: nn.Module, table: ClipTable, batch_videos: int = 512) -> np.ndarray:
    """Video-level class probabilities [n, C]: the softmax of every clip, averaged over the clips."""
    head.eval()
    out = []
    batch_videos = min(batch_videos, table.piece_videos)
    for start in range(0, table.n_videos, batch_videos):
        vid = torch.arange(start, min(start + batch_videos, table.n_videos), device=table.device)
        x = table.videos(vid)
        b, v, d = x.shape
        out.append(head(x.reshape(b * v, d)).float().softmax(-1).view(b, v, -1).mean(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def fit_set_classifier(clf: nn.Module, sets: SetInputs, labels: torch.Tensor,
                       setting: TrainSetting, seed: int, progress: Progress = None, task: str = "train",
                       stop: StopCheck = None) -> nn.Module:
    """Train a set classifier (SetClassifier) on sets of each video's clips (set_inputs.py): mean clip
    cross-entropy of the per-clip logits.

    The schedule spans `setting.epochs`; training ends after `setting.last_epoch` of them, or earlier
    where `stop` (offered the classifier, in eval mode, after each epoch but the last) says so.
    """
    device = sets.device
    labels = labels.to(device)
    clf.to(device).train()
    trainable = getattr(clf, "trainable_parameters", None)  # SetClassifier: the SSL-only heads left out
    params = trainable() if trainable is not None else list(clf.parameters())
    opt = make_optimizer([{"params": params, "lr": setting.lr, "weight_decay": setting.weight_decay}], setting.optimizer)
    gen = torch.Generator().manual_seed(seed)
    n = sets.n_videos
    steps_per_epoch = len(shuffled_batches(n, setting.batch_size, torch.Generator().manual_seed(0), torch.device("cpu")))
    total = steps_per_epoch * setting.epochs
    sched = cosine_schedule(opt, total, int(round(setting.warmup_epochs * steps_per_epoch)))
    shown = steps_per_epoch * setting.last_epoch  # the progress bar's length: the steps this run takes at most
    step = 0
    for epoch in range(1, setting.last_epoch + 1):
        for idx in shuffled_batches(n, setting.batch_size, gen, device):
            logits = clf(*sets.batch(idx, gen))  # [b, V', C]
            y = labels[idx].unsqueeze(1).expand(-1, logits.shape[1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            optimizer_step(opt, sched, loss)
            step += 1
        stopped = stop is not None and epoch < setting.last_epoch and stop(0, epoch, clf.eval())
        clf.train()
        if progress:
            progress(task, step, shown)
        if stopped:
            break
    clf.eval()
    return clf


@torch.no_grad()
def predict_set_classifier(clf: nn.Module, sets: SetInputs, batch_videos: int = 256) -> np.ndarray:
    """Video-level class probabilities [n, C] (per-clip softmax averaged over the clips)."""
    clf.eval()
    probs = sets.probabilities(clf, batch_videos)
    return probs.numpy() if probs.numel() else np.zeros((0, 0), np.float32)


def validation_score(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(top-1 %, -NLL) of video-level probabilities: the key grid points are ranked by (higher is better)."""
    labels = np.asarray(labels)
    if not np.isfinite(probs).all():  # a diverged grid point ranks last
        return float("-inf"), float("-inf")
    top1 = float(100.0 * (probs.argmax(1) == labels).mean())
    nll = float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())
    return top1, -nll


def first_best(scores: Sequence[Any]) -> int:
    """The index of the highest score, the earliest among equal ones (scores compare as tuples or numbers).

    >>> first_best([(1.0, -2.0), (3.0, -1.0), (3.0, -1.0)])
    1
    """
    return max(range(len(scores)), key=lambda i: (scores[i], -i))
