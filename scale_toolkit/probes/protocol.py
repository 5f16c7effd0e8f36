"""The probe protocol, top to bottom: for each split and seed, every requested probe is fitted on
the train split and evaluated once on the test split.

Trained probes (Linear, SCALE_linear, MLP, Transformer, SCALE_ft) go through one helper,
``select_refit_predict``:

1. carve a class-stratified validation hold-out (``val_fraction``, default 10 %) from the train
   videos of the split (after the low-shot subset, if any); test videos are never touched;
2. train every grid point on the rest and rank them by validation top-1 (ties: lower NLL, then
   grid order);
3. retrain the best grid point on the whole train part and evaluate it once on the test split.

k-NN probes have no hyper-parameters to select (k and T are fixed by the protocol): memory = the
train videos (the low-shot subset, if any), queries = the test videos.

Validation and test always use the eval store's clips (eval15); probe training uses the eval15
clips of the train videos, or the clips of `--train-store` (matched by video id).

Example:
    >>> res = run_probes("UCF_EVAL15.zarr", options=ProbeOptions(split="1"))  # doctest: +SKIP
    >>> res["results"]["linear"]["top1"]  # doctest: +SKIP
"""
from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from ..contracts.probe_result import ProbeResult
from ..seeding import seeded
from . import data as D
from .context import ProbeContext, build_context
from .early_stop import PlateauStop
from .fit import (
    ClipTable,
    Progress,
    RowsOf,
    StopCheck,
    TrainSetting,
    first_best,
    fit_clip_heads,
    fit_set_classifier,
    predict_clip_head,
    predict_set_classifier,
    validation_score,
)
from .linear import linear_head
from .metrics import topk_accuracy
from .mlp import mlp_head
from .official import OfficialRunner
from .options import ROW_LABELS, ROWS, ProbeOptions, checked_rows, default_rows
from .report import aggregate, finite_or_none, protocol_text, result_document, video_predictions
from .row_functions import CLIP_INPUTS, SET_CLASSIFIERS, VIDEO_VECTORS
from .rows import ROW
from .runner import ProbeRunner
from .set_inputs import FixedSets, RaggedSets, SetInputs
from .subsets import class_balanced_subset, stratified_holdout

__all__ = ["ROWS", "ROW_LABELS", "ProbeOptions", "default_rows", "run_probes", "select_refit_predict"]

# (fit rows, validation rows) -> (grid point, validation probabilities) for every grid point, in grid order
FitGrid = Callable[[np.ndarray, np.ndarray], Iterator[tuple[TrainSetting, np.ndarray]]]
# (chosen grid point, train rows, test rows) -> test probabilities
RefitPredict = Callable[[TrainSetting, np.ndarray, np.ndarray], np.ndarray]


def run_probes(store: str | Path, *, rows: Optional[list[str]] = None, model: Optional[str | Path] = None,
               train_store: Optional[str | Path] = None, options: Optional[ProbeOptions] = None,
               progress: Progress = None) -> ProbeResult:
    """Run the requested probes (default: `default_rows`) and return the full result document
    (the same type for either protocol; ``result.to_json()`` is what `--json` writes).

    ``result["results"][row]`` has "top1" and "top5" in percent; with several seeds, their mean and
    "per_seed"; with several splits, the mean over splits, "*_std" and "per_split".
    """
    options = options or ProbeOptions()
    options.validate()
    rows = checked_rows(rows, has_model=model is not None, protocol=options.protocol)
    started = time.perf_counter()
    context = build_context(store, rows, options, model, train_store, progress)
    runner = RUNNERS[options.protocol](context)
    results = run_every_split(runner, context)
    return result_document(context, runner, results, str(train_store) if train_store else None,
                           seconds=time.perf_counter() - started)


def run_every_split(runner: ProbeRunner, context: ProbeContext) -> dict[str, dict]:
    """Every row on every split and seed; the mean over seeds, then over splits, where there are several."""
    rows, progress = context.rows, context.progress
    splits, seeds = context.options.splits(), context.options.resolved_seeds()
    units, done = len(rows) * len(splits) * len(seeds), 0
    if progress:
        progress("probes", 0, units)
    per_split: dict[str, dict[str, dict]] = {row: {} for row in rows}
    for split in splits:
        context.check_complete(split)
        context.split_rows(split)  # fail early on an empty split
        for row in rows:
            by_seed = {}
            for seed in seeds:
                by_seed[str(seed)] = runner.run_one(row, split, seed)
                done += 1
                if progress:
                    progress("probes", done, units)
            per_split[row][str(split)] = by_seed[str(seeds[0])] if len(seeds) == 1 else aggregate(by_seed, "per_seed")
    return {row: per_split[row][str(splits[0])] if len(splits) == 1 else aggregate(per_split[row], "per_split")
            for row in rows}


def select_refit_predict(fit_grid: FitGrid, refit_predict: RefitPredict, train: np.ndarray, test: np.ndarray,
                         labels: np.ndarray, val_fraction: float, seed: int) -> dict:
    """Hold out a validation part of `train`, rank the grid on it, refit the best point on all of
    `train` and predict `test` once: the result entry of one trained probe."""
    fit_rows, val_rows = stratified_holdout(train, labels[train], val_fraction, seed)
    candidates = [(validation_score(probs, labels[val_rows]), order, setting)
                  for order, (setting, probs) in enumerate(fit_grid(fit_rows, val_rows))]
    best_score, _, best = candidates[first_best([score for score, _, _ in candidates])]  # ties: the earlier point
    probs = refit_predict(best, train, test)
    return {
        **topk_accuracy(probs, labels[test]),
        "selected": best.to_dict(),
        "val_top1": best_score[0],
        "grid": [{**setting.to_dict(), "val_top1": finite_or_none(score[0]), "val_nll": finite_or_none(-score[1])}
                 for score, _, setting in candidates],
        "n_train": int(len(train)), "n_fit": int(len(fit_rows)), "n_val": int(len(val_rows)), "n_test": int(len(test)),
        **video_predictions(probs, test),
    }


def _stop_check(plateau: Optional[PlateauStop], predict: Callable[[torch.nn.Module], np.ndarray]) -> StopCheck:
    """The training loops' early-stopping question for a grid (None: the grid has no patience):
    the point's validation probabilities, judged by ``plateau``."""
    if plateau is None:
        return None
    return lambda index, epoch, model: plateau.check(index, epoch, predict(model))


class StandardRunner(ProbeRunner):
    """The standard protocol's rows on a ProbeContext: k-NN, clip heads and set classifiers."""

    def __init__(self, context: ProbeContext) -> None:
        super().__init__(context)
        self.transformer_config = context.transformer_config

    def protocol_config(self, rows: list[str]) -> dict:
        """Protocol-specific entries of the result's config: the grids of the trained rows."""
        return {"grids": {row: self.ctx.grids[row].to_dict() for row in rows if row in self.ctx.grids}}

    def protocol_text(self, rows: list[str], train_store: Optional[str]) -> str:
        ctx = self.ctx
        return protocol_text(ctx.options, rows, train_store, ctx.store.n_clips, ctx.batchnorm, ctx.grids)

    def low_shot_subset(self, train: np.ndarray, seed: int) -> np.ndarray:
        """ceil(low_shot x n_c) random videos of each class, drawn from the seed."""
        assert self.ctx.options.low_shot is not None  # run_one asks only with --low-shot
        return class_balanced_subset(train, self.ctx.labels[train], self.ctx.options.low_shot, seed)

    # ------------------------------------------------------------------ k-NN
    def knn_vectors(self, kind: str, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The row's vector (row_functions.VIDEO_VECTORS) of the eval clips, memory and queries alike."""
        view, vector = self.ctx.eval_view, VIDEO_VECTORS[kind]
        return vector(self.ctx, view, view.rows(train)), vector(self.ctx, view, view.rows(test))

    def knn_center(self) -> str:
        return self.ctx.options.knn_center

    # ------------------------------------------------------------------ trained rows
    def run_trained(self, row: str, split: int, seed: int, train: np.ndarray, test: np.ndarray) -> dict:
        """Grid on a validation hold-out, refit the best point, test once (select_refit_predict)."""
        task = f"{ROW_LABELS[row]} · split {split} · seed {seed}"
        clip_head = ROW[row].method == "clip_head"
        grid_fitter = self._clip_head_grid if clip_head else self._set_classifier_grid
        final_fitter = self._clip_head_final if clip_head else self._set_classifier_final
        return select_refit_predict(partial(grid_fitter, row, seed, task), partial(final_fitter, row, seed, task),
                                    train, test, self.ctx.labels, self.ctx.options.val_fraction, seed)

    # ------------------------------------------------------------------ clip heads (Linear, SCALE_linear, MLP)
    def _table(self, view: D.View, kind: str, rows: np.ndarray, to_train: bool = True) -> ClipTable:
        """Per-clip inputs: the row's tensors (row_functions.CLIP_INPUTS) at ``rows``; a table only
        predicted on is never copied to float32 whole (its pieces are, one at a time)."""
        return ClipTable(CLIP_INPUTS[kind](self.ctx, view), rows=view.rows(rows),  # the view's tensors, not copies
                         **({} if to_train else {"materialize_bytes": 0}))

    def _new_heads(self, kind: str, in_dim: int, setting: TrainSetting, count: int, seed: int) -> list[torch.nn.Sequential]:
        """``count`` fresh heads initialised from ``seed``; the seeded stream runs on into their training (dropout)."""
        return seeded(lambda: [self._make_head(kind, in_dim, setting) for _ in range(count)], seed, restore=False)

    def _make_head(self, kind: str, in_dim: int, setting: TrainSetting) -> torch.nn.Sequential:
        if ROW[kind].head == "mlp":
            return mlp_head(in_dim, self.ctx.n_classes, hidden=setting.hidden or 1024, dropout=setting.dropout,
                            batchnorm=setting.batchnorm)
        return linear_head(in_dim, self.ctx.n_classes, batchnorm=setting.batchnorm)

    def _clip_head_grid(self, kind: str, seed: int, task: str, fit_rows: np.ndarray, val_rows: np.ndarray
                        ) -> Iterator[tuple[TrainSetting, np.ndarray]]:
        """Every (lr, wd) of a group trains at once, one head each, on the same batches."""
        ctx = self.ctx
        fit_table = self._table(ctx.train_view, kind, fit_rows)
        val_table = self._table(ctx.eval_view, kind, val_rows, to_train=False)
        fit_labels = torch.as_tensor(ctx.labels[fit_rows], dtype=torch.long)
        grid = ctx.grids[kind]
        groups = grid.groups(ctx.batchnorm)
        for number, (base, pairs) in enumerate(groups, start=1):
            heads = self._new_heads(kind, fit_table.dim, base, len(pairs), seed)
            plateau = PlateauStop(grid.patience, ctx.labels[val_rows]) if grid.patience else None
            fitted = fit_clip_heads(fit_table, fit_labels, heads, pairs, base, seed, ctx.progress,
                                    f"{task} grid {number}/{len(groups)}",
                                    stop=_stop_check(plateau, partial(predict_clip_head, table=val_table)))
            for index, (head, (lr, weight_decay)) in enumerate(zip(fitted, pairs)):
                setting = TrainSetting(**{**base.to_dict(), "lr": lr, "weight_decay": weight_decay,
                                          "epochs_run": plateau.epochs_run.get(index, 0) if plateau else 0})
                yield setting, predict_clip_head(head, val_table)

    def _clip_head_final(self, kind: str, seed: int, task: str, setting: TrainSetting, train: np.ndarray,
                         test: np.ndarray) -> np.ndarray:
        ctx = self.ctx
        train_table = self._table(ctx.train_view, kind, train)
        head, = self._new_heads(kind, train_table.dim, setting, 1, seed)
        fit_clip_heads(train_table, torch.as_tensor(ctx.labels[train], dtype=torch.long), [head],
                       [(setting.lr, setting.weight_decay)], setting, seed, ctx.progress, f"{task} final")
        return predict_clip_head(head, self._table(ctx.eval_view, kind, test, to_train=False))

    # ------------------------------------------------------------------ set classifiers (Transformer, SCALE_ft)
    def _new_set_classifier(self, kind: str, train_sets: SetInputs, seed: int) -> torch.nn.Module:
        """A fresh classifier initialised from ``seed``; the seeded stream runs on into its training (dropout)."""
        return seeded(lambda: SET_CLASSIFIERS[kind](self.ctx, train_sets), seed, restore=False)

    def _set_inputs(self, view: D.View, rows: np.ndarray) -> SetInputs:
        idx = view.rows(rows)  # the view's tensors at these rows, not copies of them
        config = self.ctx.transformer_config
        if view.clips is not None:  # videos of any length: sets of K of each video's clips
            return RaggedSets(view.clips, idx, config.set_size)
        return FixedSets(RowsOf(view.features, idx), RowsOf(view.positions(config.pos_input), idx))

    def _set_classifier_grid(self, kind: str, seed: int, task: str, fit_rows: np.ndarray, val_rows: np.ndarray
                             ) -> Iterator[tuple[TrainSetting, np.ndarray]]:
        """One classifier per grid point, trained and scored in turn (only one is held at a time)."""
        ctx = self.ctx
        fit_sets, val_sets = self._set_inputs(ctx.train_view, fit_rows), self._set_inputs(ctx.eval_view, val_rows)
        fit_labels = torch.as_tensor(ctx.labels[fit_rows], dtype=torch.long)
        grid = ctx.grids[kind]
        settings = [TrainSetting(**{**base.to_dict(), "lr": lr, "weight_decay": wd, "batchnorm": False})
                    for base, pairs in grid.groups([False]) for lr, wd in pairs]
        for number, setting in enumerate(settings, start=1):
            classifier = self._new_set_classifier(kind, fit_sets, seed)
            plateau = PlateauStop(grid.patience, ctx.labels[val_rows]) if grid.patience else None
            fit_set_classifier(classifier, fit_sets, fit_labels, setting, seed, ctx.progress,
                               f"{task} grid {number}/{len(settings)}",
                               stop=_stop_check(plateau, partial(predict_set_classifier, sets=val_sets)))
            val_probs = predict_set_classifier(classifier, val_sets)
            del classifier
            if plateau and plateau.epochs_run:
                setting = replace(setting, epochs_run=plateau.epochs_run[0])
            yield setting, val_probs

    def _set_classifier_final(self, kind: str, seed: int, task: str, setting: TrainSetting, train: np.ndarray,
                              test: np.ndarray) -> np.ndarray:
        ctx = self.ctx
        train_sets = self._set_inputs(ctx.train_view, train)
        classifier = self._new_set_classifier(kind, train_sets, seed)
        fit_set_classifier(classifier, train_sets, torch.as_tensor(ctx.labels[train], dtype=torch.long), setting, seed,
                           ctx.progress, f"{task} final")
        return predict_set_classifier(classifier, self._set_inputs(ctx.eval_view, test))


# `--protocol` -> its runner: run_probes sees one type, ProbeRunner, whichever protocol runs
RUNNERS: dict[str, Callable[[ProbeContext], ProbeRunner]] = {"standard": StandardRunner, "official": OfficialRunner}
