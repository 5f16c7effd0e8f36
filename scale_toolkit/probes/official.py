"""`scale probe --protocol official`: the probe rows as the official SCALE evaluation code computes them.

Read from Separius/SCALE @ 01447a3 for facts only; where the paper is silent, the official code
decides. Row by row:

* k-NN: mean of the clip features of a video; SCALE_kNN: [mean clip feature || SET token].
  Memory = the train videos' train-style clips (``--train-store``, e.g. train16), queries = the
  test videos' eval clips; each side centred on its own mean, L2-normalised, k = 20, vote exp(sim/0.07).
* Linear / SCALE_linear / MLP / Transformer / SCALE_ft: see ``official_fit``.
* Low-shot: per class max(floor(p * n_c), 1) videos, the first ones in store (file) order.
* Selection: the official code reports the best test accuracy over epochs x aggregations. Here
  the default picks (epoch, aggregation) on a class-stratified validation hold-out of the train
  split, retrains on the whole train split for that many epochs and tests once. Only
  ``select_on_test`` (CLI ``--select-on-test``) reproduces the test-set selection, and the result
  says so.

The computations the standard protocol shares are its own pieces, called from here: the runner
interface and the k-NN row (runner.py), the clip-mean vector (row_functions), the optimiser, batches
and schedule (fit.py), the eval loop (set_inputs.FixedSets), the random clips of a step
(train/ragged.py), the linear head (linear.py, its ``official`` variant), the fresh SCALE model
(transformer.py), the weight-decay rule (schedules.py), the hold-out and the first-best rule. What
stays in these two modules is what the official code does differently.
"""
from __future__ import annotations

import copy
import math
from dataclasses import replace
from typing import Any, Optional

import numpy as np
import torch

from ..model import ScaleConfig, ScaleModel
from ..seeding import seeded
from . import data as D
from .context import ProbeContext
from .fit import first_best
from .official_fit import MODES, ClipClassifier, fit_official, mode_scores, schedule_from_run, video_scores
from .report import video_predictions
from .row_functions import VIDEO_VECTORS
from .rows import REGISTRY, rows_of
from .runner import ProbeRunner
from .set_inputs import FixedSets
from .subsets import stratified_holdout
from .transformer import fresh_scale_model

TRAINED = tuple(row.name for row in REGISTRY if row.trained and "official" in row.protocols)
FT_DROPOUT = 0.1  # the official eval sets the predictor's dropout (and attention dropout) to 0.1


def official_subset(rows: np.ndarray, labels: np.ndarray, fraction: float) -> np.ndarray:
    """Low-shot rows of the official code: per class max(floor(fraction * n_c), 1), the first in row order.

    Example:
        >>> official_subset(np.arange(6), np.array([0, 1, 0, 1, 0, 1]), 0.5).tolist()
        [0, 1]
    """
    rows, labels = np.asarray(rows), np.asarray(labels)
    keep = []
    for c in np.unique(labels):
        members = rows[labels == c]  # already in file order
        keep.append(members[:max(math.floor(fraction * len(members)), 1)])
    return np.sort(np.concatenate(keep)) if keep else rows[:0]


class OfficialRunner(ProbeRunner):
    """The official protocol on the same inputs (a ProbeContext) and result layout as the standard runner."""

    def __init__(self, context: ProbeContext) -> None:
        super().__init__(context)
        model = context.model
        self.schedule = schedule_from_run(model.meta.get("train") if model is not None else None,
                                          context.options.epochs)
        transformer_config = context.transformer_config
        if model is None:
            transformer_config = ScaleConfig.official(input_dim=context.store.feature_dim,
                                                      **context.options.transformer_model)
        self.transformer_config = replace(transformer_config, dropout=FT_DROPOUT, attn_dropout=FT_DROPOUT)
        self.ft_model = None
        if model is not None and "scale_ft" in context.rows:
            self.ft_model = ScaleModel(replace(model.module.config, dropout=FT_DROPOUT, attn_dropout=FT_DROPOUT))
            self.ft_model.load_state_dict(model.module.state_dict())
        if context.train_store is None:
            context.notes.append("no --train-store: k-NN memory and probe training use the eval clips of the train "
                                 "videos; the official code uses their train-style clips (pass a train16 store)")

    # ------------------------------------------------------------------ description
    def protocol_config(self, rows: list[str]) -> dict:
        return {"official_schedule": self.schedule.to_dict()}

    def protocol_text(self, rows: list[str], train_store: Optional[str]) -> str:
        return official_protocol_text(self, rows, train_store)

    def low_shot_subset(self, train: np.ndarray, seed: int) -> np.ndarray:
        """The official rule (official_subset): no draw, so every seed gets the same subset."""
        assert self.ctx.options.low_shot is not None  # run_one asks only with --low-shot
        return official_subset(train, self.ctx.labels[train], self.ctx.options.low_shot)

    # ------------------------------------------------------------------ k-NN
    def knn_vectors(self, kind: str, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Memory from the train view (the train-style clips of --train-store), queries from the eval view."""
        return self._knn_side(kind, self.ctx.train_view, train), self._knn_side(kind, self.ctx.eval_view, test)

    def knn_center(self) -> str:
        return "split"  # the official code centres each side on its own mean

    def _knn_side(self, kind: str, view: D.View, rows: np.ndarray) -> np.ndarray:
        """The clip mean (the standard k-NN vector); SCALE_kNN appends the raw SET token to it (the official
        feature: the standard SCALE_kNN is the L2-normalised SET token alone)."""
        idx = view.rows(rows)
        x = VIDEO_VECTORS["knn"](self.ctx, view, idx)
        if kind == "scale_knn":
            assert view.set_token is not None  # context.build_context embeds the views for SCALE rows
            x = np.concatenate([x, view.set_token[idx].float().cpu().numpy()], axis=1)
        return x

    # ------------------------------------------------------------------ trained rows
    def _inputs(self, view: D.View, rows: np.ndarray, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        idx = view.rows(rows)
        pos_input = self.transformer_config.pos_input if kind in ("scale_linear", "scale_ft", "transformer") else "eq5"
        return view.features[idx], view.positions(pos_input)[idx]

    def _classifier(self, kind: str, seed: int, train_features: torch.Tensor) -> ClipClassifier:
        """A fresh classifier on the device, initialised from ``seed``; the seeded stream runs on into its training."""
        return seeded(lambda: self._make_classifier(kind, train_features), seed, restore=False)

    def _make_classifier(self, kind: str, train_features: torch.Tensor) -> ClipClassifier:
        """The row's classifier; the SCALE rows get their own copy of the model (the run's stays untouched)."""
        ssl_model = self.ctx.model.module if self.ctx.model is not None else None
        shared = {"scale_linear": ssl_model, "scale_ft": self.ft_model}.get(kind)
        model = copy.deepcopy(shared) if shared is not None else None
        if kind == "transformer":
            model = fresh_scale_model(self.transformer_config, train_features)
        classifier = ClipClassifier(kind, self.ctx.store.feature_dim, self.ctx.n_classes, model, self.ctx.batchnorm[0])
        return classifier.to(self.ctx.device)

    def _train_and_score(self, kind: str, fit_rows: np.ndarray, eval_rows: np.ndarray, seed: int, epochs: int,
                         keep_best: bool) -> tuple[list[tuple[int, str, dict[str, float]]], Optional[np.ndarray]]:
        """Train on ``fit_rows``; after every epoch score ``eval_rows`` (eval clips) in each aggregation.

        Returns (history [(epoch, mode, scores)], the best entry's video scores when ``keep_best``)."""
        x, pos = self._inputs(self.ctx.train_view, fit_rows, kind)
        ex, epos = self._inputs(self.ctx.eval_view, eval_rows, kind)
        y_eval = self.ctx.labels[eval_rows]
        history: list[tuple[int, str, dict[str, float]]] = []
        best: dict[str, Any] = {"top1": -1.0, "scores": None}

        def evaluate(clf: ClipClassifier, epoch: int) -> None:
            logits = _logits(clf, ex, epos)
            for mode, sc in mode_scores(logits, y_eval).items():
                history.append((epoch, mode, sc))
                if keep_best and sc["top1"] > best["top1"]:  # strictly better: earliest epoch, mode order
                    best.update(top1=sc["top1"], scores=video_scores(logits, mode))

        clf = self._classifier(kind, seed, x)
        fit_official(clf, x, pos, torch.as_tensor(self.ctx.labels[fit_rows], dtype=torch.long), self.schedule, seed, epochs,
                     evaluate)
        return history, best["scores"]

    def run_trained(self, kind: str, split: int, seed: int, train: np.ndarray, test: np.ndarray) -> dict:
        """The standard's scheme (protocol.select_refit_predict: hold-out, rank, refit, test once) with the
        epochs x aggregations of one training as its grid, ranked by top-1 alone; or, with --select-on-test,
        the official code's own: the best test top-1 over that grid (its video scores kept as it trains)."""
        epochs = self.schedule.epochs
        base = {"n_train": int(len(train)), "n_test": int(len(test)), "schedule": self.schedule.to_dict()}
        if self.ctx.options.select_on_test:
            history, scores = self._train_and_score(kind, train, test, seed, epochs, keep_best=True)
            epoch, mode, sc = _best(history)
            assert scores is not None  # kept at the first evaluation (every top-1 beats the -1 it starts from)
            return {**sc, **base, "selected": {"epoch": epoch, "mode": mode, "on": "TEST"},
                    "curve": _curve(history), **video_predictions(scores, test)}
        fit_rows, val_rows = stratified_holdout(train, self.ctx.labels[train], self.ctx.options.val_fraction, seed)
        history, _ = self._train_and_score(kind, fit_rows, val_rows, seed, epochs, keep_best=False)
        epoch, mode, val = _best(history)
        x, pos = self._inputs(self.ctx.train_view, train, kind)
        clf = self._classifier(kind, seed, x)
        fit_official(clf, x, pos, torch.as_tensor(self.ctx.labels[train], dtype=torch.long), self.schedule, seed, epoch)
        logits = _logits(clf, *self._inputs(self.ctx.eval_view, test, kind))
        sc = mode_scores(logits, self.ctx.labels[test])[mode]
        return {**sc, **base, "selected": {"epoch": epoch, "mode": mode, "on": "validation"}, "val_top1": val["top1"],
                "val_curve": _curve(history), "n_fit": int(len(fit_rows)), "n_val": int(len(val_rows)),
                **video_predictions(video_scores(logits, mode), test)}


def _best(history: list[tuple[int, str, dict[str, float]]]) -> tuple[int, str, dict[str, float]]:
    """The first (epoch, mode) with the highest top-1, scanning epochs in order and modes in MODES order
    (a top-1 alone: the standard's grid breaks ties by NLL, which the official eval does not compute)."""
    return history[first_best([scores["top1"] for _, _, scores in history])]


@torch.no_grad()
def _logits(clf: ClipClassifier, features: torch.Tensor, positions: torch.Tensor, batch_videos: int = 256) -> torch.Tensor:
    """Eval-mode logits [n, v, C] on all given clips (set_inputs.FixedSets, as the standard set classifiers)."""
    clf.eval()
    return torch.cat(list(FixedSets(features, positions).logits(clf, batch_videos)))


def _curve(history: list[tuple[int, str, dict[str, float]]]) -> dict[str, list[float]]:
    return {m: [sc["top1"] for _, mode, sc in history if mode == m] for m in MODES}


def official_protocol_text(runner: OfficialRunner, rows: list[str], train_store: Optional[str]) -> str:
    """Every choice of the official protocol, in words (the table footer and the JSON)."""
    options, schedule = runner.ctx.options, runner.schedule
    memory = (f"the train videos' clips of --train-store {train_store}" if train_store else
              "the eval clips of the train videos (NO --train-store: the official code uses train-style clips)")
    parts = ["PROTOCOL: official (the official SCALE eval code where the paper is silent)."]
    if rows_of(rows, "knn"):
        parts.append(f"k-NN: k={','.join(map(str, options.knn_k))}, vote exp(sim/{options.knn_temperature:g}); "
                     f"feature = mean of the clip features, SCALE_kNN = [mean clip feature || SET]; "
                     f"memory = {memory}, queries = test split "
                     f"(eval clips); each split centred on its own mean, then L2-normalised.")
    trained = [r for r in rows if r in TRAINED]
    if trained:
        bn = "BatchNorm without affine before the classifier" if runner.ctx.batchnorm[0] else "no input normalisation"
        parts.append(f"Trained probes: per-clip classifiers with PyTorch default init, {bn}; Linear on x_i, "
                     f"SCALE_linear on [x_i || SET] (frozen SSL model), MLP D-2048-2048-512 (ReLU) with a linear "
                     f"layer on [x_i || h_i], Transformer / SCALE_ft: SCALE predictor (random init / SSL weights, "
                     f"dropout {FT_DROPOUT}) with a linear layer on [x_i || SET]. Training on {memory}: batches of "
                     f"{schedule.batch_size} videos (all of them if fewer; last partial batch dropped), "
                     f"{schedule.clips_per_step} random clips per video per step, "
                     f"cross-entropy per clip; AdamW lr {schedule.lr:g}, wd {schedule.weight_decay:g} "
                     f"(none on 1-D, biases, tokens), "
                     f"warm-up over {schedule.warmup_fraction:.0%} then cosine of a {schedule.ssl_epochs}-epoch schedule "
                     f"({schedule.source}), trained {schedule.epochs} epochs. Scored every epoch on the eval clips as "
                     f"mean logits, mean softmax and per-clip logits (clip-level accuracy).")
        if options.select_on_test:
            parts.append("!! SELECTED ON THE TEST SET: each trained row reports its best test top-1 over epochs x the "
                         "three aggregations, as the official code does; these numbers are optimistic.")
        else:
            parts.append(f"Selection: epoch x aggregation chosen by top-1 on a class-stratified {options.val_fraction:.0%} "
                         f"validation hold-out of the train split, then retrained on the full train split for that "
                         f"many epochs and tested once.")
    if options.low_shot:
        parts.append(f"Low-shot: max(floor({options.low_shot:g} x n_c), 1) train videos per class, the first in file order; "
                     f"full test split.")
    parts.append("Standard-protocol options (--knn-center, --scale-knn-feature, --scale-clip-feature, --head, --grid, "
                 "--grid-preset) do not apply.")
    parts.append(f"Seeds: {', '.join(map(str, options.resolved_seeds()))}.")
    return " ".join(parts)

