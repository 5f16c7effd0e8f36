"""The probe protocol, top to bottom: for each split and seed, every requested probe is fitted on
the train split and evaluated once on the test split.

Trained probes (Linear, SCALE_linear, MLP, Transformer, SCALE_ft):

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..errors import ScaleError
from ..model.layers import feature_stats
from ..store import FeatureStore
from . import data as D
from .fit import (ClipTable, Progress, TrainSetting, fit_clip_heads, fit_set_classifier, predict_clip_head,
                  predict_set_classifier, validation_score)
from .grid import CLIP_HEAD_ROWS, SET_ROWS, GridSpec, resolve_grids
from .knn import CENTERING, DEFAULT_K, DEFAULT_TEMPERATURE, knn_scores, prepare
from .linear import linear_head
from .metrics import topk_accuracy
from .mlp import mlp_head
from .subsets import class_balanced_subset, stratified_holdout
from .transformer import HEADS, finetune_classifier, transformer_classifier

ROWS = ("knn", "scale_knn", "linear", "scale_linear", "mlp", "transformer", "scale_ft")
ROW_LABELS = {"knn": "k-NN", "scale_knn": "SCALE_kNN", "linear": "Linear", "scale_linear": "SCALE_linear",
              "mlp": "MLP", "transformer": "Transformer", "scale_ft": "SCALE_ft"}
MODEL_ROWS = ("scale_knn", "scale_linear", "scale_ft")
CLIP_FEATURES = ("backbone", "refined", "both")
SCALE_KNN_FEATURES = ("set", "set+refined")
BATCHNORM = ("auto", "on", "off", "search")


@dataclass
class ProbeOptions:
    """Everything that decides a probe run besides the inputs (all of it goes into the result JSON)."""

    split: str = "1"  # "1" | "2" | "3" | "all"
    knn_k: list[int] = field(default_factory=lambda: [DEFAULT_K])
    knn_temperature: float = DEFAULT_TEMPERATURE
    knn_center: str = "none"  # none | train | split
    scale_knn_feature: str = "set"  # set | set+refined
    scale_clip_feature: str = "backbone"  # SCALE_linear clip part: backbone | refined | both
    batchnorm: str = "auto"  # auto: on for MAE-family backbones; on | off | search (both, chosen on validation)
    head: str = "clip_set"  # Transformer / SCALE_ft head: clip_set | set
    low_shot: Optional[float] = None
    seeds: Optional[list[int]] = None  # None: [0], or [0, 1, 2] with low_shot
    val_fraction: float = 0.1
    grid_preset: str = "small"
    grid: dict[str, dict[str, Any]] = field(default_factory=dict)
    epochs: Optional[int] = None
    transformer_model: dict[str, Any] = field(default_factory=dict)  # ScaleConfig overrides without --model
    device: str = "auto"

    def resolved_seeds(self) -> list[int]:
        if self.seeds:
            return [int(s) for s in self.seeds]
        return [0, 1, 2] if self.low_shot else [0]

    def splits(self) -> list[int]:
        s = str(self.split).strip().lower()
        if s == "all":
            return [1, 2, 3]
        if s in ("1", "2", "3"):
            return [int(s)]
        raise ScaleError(f"--split must be 1, 2, 3 or all, got {self.split!r}")

    def validate(self) -> None:
        self.splits()
        if not self.knn_k or any(int(k) < 1 for k in self.knn_k):
            raise ScaleError(f"--knn values must be positive integers, got {self.knn_k}")
        if self.knn_center not in CENTERING:
            raise ScaleError(f"--knn-center must be one of {', '.join(CENTERING)}, got {self.knn_center!r}")
        if self.scale_knn_feature not in SCALE_KNN_FEATURES:
            raise ScaleError(f"--scale-knn-feature must be one of {', '.join(SCALE_KNN_FEATURES)}")
        if self.scale_clip_feature not in CLIP_FEATURES:
            raise ScaleError(f"--scale-clip-feature must be one of {', '.join(CLIP_FEATURES)}")
        if self.batchnorm not in BATCHNORM:
            raise ScaleError(f"--bn must be one of {', '.join(BATCHNORM)}, got {self.batchnorm!r}")
        if self.head not in HEADS:
            raise ScaleError(f"--head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.low_shot is not None and not 0.0 < self.low_shot <= 1.0:
            raise ScaleError(f"--low-shot must be a fraction in (0, 1], got {self.low_shot}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ScaleError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        if self.knn_temperature <= 0:
            raise ScaleError("--knn-temperature must be positive")


def default_rows(has_model: bool) -> list[str]:
    """knn + linear, and their SCALE counterparts when a model is given."""
    return ["knn", "scale_knn", "linear", "scale_linear"] if has_model else ["knn", "linear"]


def _grid_text(grid: GridSpec, row: str) -> str:
    def vals(v):
        return "{" + ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v) + "}"

    text = (f"{ROW_LABELS[row]} lr {vals(grid.lr)} x wd {vals(grid.weight_decay)}, {'/'.join(grid.optimizer)}, "
            f"batch {vals(grid.batch_size)} videos, {grid.epochs} epochs")
    if row == "mlp":
        text += f", width {vals(grid.hidden)}, dropout {vals(grid.dropout)}"
    return text


def protocol_text(options: ProbeOptions, rows: list[str], train_store: Optional[str], n_clips: int,
                  batchnorm: list[bool], grids: Optional[dict[str, GridSpec]] = None) -> str:
    """The protocol, in words, for the table footer and the JSON."""
    seeds = options.resolved_seeds()
    parts = []
    if any(r in rows for r in ("knn", "scale_knn")):
        feat = "SET token" + (" ++ mean refined clip" if options.scale_knn_feature == "set+refined" else "")
        parts.append(f"k-NN: k={','.join(map(str, options.knn_k))}, cosine on L2-normalised features "
                     f"(centring: {options.knn_center}), vote exp(sim/{options.knn_temperature:g}); memory = train split (eval clips), "
                     f"queries = test split; k-NN feature = mean of the {n_clips} clip features, SCALE_kNN = {feat}.")
    trained = [r for r in rows if r in CLIP_HEAD_ROWS + SET_ROWS]
    if trained:
        bn = {(True,): "on", (False,): "off (fixed 1/RMS input scale instead)",
              (True, False): "searched"}.get(tuple(batchnorm), "?")
        parts.append(f"Trained probes: hyper-parameters chosen by top-1 (ties: NLL) on a class-stratified {options.val_fraction:.0%} "
                     f"validation hold-out of the train split, then retrained on the full train split and evaluated "
                     f"once on the test split (grid '{options.grid_preset}'"
                     f"{', overridden' if options.grid or options.epochs else ''}). Predictions average the per-clip "
                     f"softmax over the clips; BatchNorm without affine before clip heads: {bn}.")
        if grids:
            parts.append("Grids: " + "; ".join(_grid_text(grids[r], r) for r in trained) + ".")
        parts.append(f"Probe training clips: {'--train-store ' + train_store if train_store else 'eval clips of the train videos'}.")
    if any(r in rows for r in ("scale_linear",)):
        feat = {"backbone": "[C_i || SET]", "refined": "[refined_i || SET]", "both": "[C_i || refined_i || SET]"}
        parts.append(f"SCALE_linear input per clip: {feat[options.scale_clip_feature]}.")
    if any(r in rows for r in SET_ROWS):
        parts.append("Transformer / SCALE_ft: SCALE architecture (random init / trained), linear head on "
                     + ("[refined_i || SET] per clip" if options.head == "clip_set" else "the SET token") + ".")
    if options.low_shot:
        parts.append(f"Low-shot: probes trained on a class-balanced {options.low_shot:.0%} of the train split "
                     f"(ceil per class, >= 1), full test split.")
    parts.append(f"Seeds: {', '.join(map(str, seeds))}" + (" (mean ± std over seeds)" if len(seeds) > 1 else "") + ".")
    return " ".join(parts)


class _Runner:
    def __init__(self, store_path, rows, options: ProbeOptions, model_path, train_store_path, progress: Progress):
        self.options = options
        self.progress = progress
        self.rows = rows
        self.notes: list[str] = []
        self.store = FeatureStore.open(store_path)
        self.train_store = FeatureStore.open(train_store_path) if train_store_path else None
        if self.train_store is not None:
            D.check_compatible(self.store, self.train_store)
        self.device = D.resolve_device(options.device)
        view = self.store.attrs.get("view")
        if isinstance(view, dict) and view.get("name") == "train16":
            raise ScaleError(f"--store {self.store.path} holds the train16 view (SSL training clips); probes evaluate on "
                             "the eval15 (5x3) clips: pass an eval15 store as --store (this one may go to --train-store)")
        self.labels = self.store.labels
        names = self.store.class_names
        self.n_classes = max(len(names), int(self.labels.max()) + 1 if len(self.labels) else 0)
        if self.n_classes < 2:
            raise ScaleError(f"{self.store.path} has fewer than two classes; probes need labelled videos")
        self.model = None
        self.model_info: Optional[dict] = None
        model_cfg: Optional[dict] = None
        if model_path is not None:
            from ..model import load_model
            from ..model.io import LAST_CHECKPOINT, MODEL_FILE

            model, cfg = load_model(model_path)
            model_cfg, meta = cfg["model"], cfg.get("meta", {}) or {}
            D.check_model_against_store(model_cfg, meta, self.store, Path(model_path))
            mp = Path(model_path)
            file = mp if mp.is_file() else next(p for p in (mp / MODEL_FILE, mp / LAST_CHECKPOINT) if p.exists())
            trained_split = (meta.get("store") or {}).get("split") if isinstance(meta.get("store"), dict) else None
            self.model = model
            self.model_info = {"path": str(model_path), "file": str(file), "fingerprint": D.file_sha256(file),
                               "config": model_cfg, "trained_on_split": trained_split}
            for s in options.splits():
                if trained_split is not None and int(trained_split) != s:
                    self.notes.append(f"the SCALE model was trained on the train videos of split {trained_split}; "
                                      f"on split {s} some test videos were seen (unlabelled) during its SSL training")
        from ..model import ScaleConfig

        if model_cfg is not None:
            self.transformer_config = ScaleConfig.from_dict({**model_cfg, **options.transformer_model})
        else:
            self.transformer_config = ScaleConfig.from_dict({"input_dim": self.store.feature_dim, **options.transformer_model})
        if self.transformer_config.input_dim != self.store.feature_dim:
            raise ScaleError(f"transformer input_dim {self.transformer_config.input_dim} != store feature dim {self.store.feature_dim}")
        self.grids = resolve_grids(options.grid_preset, options.grid, options.epochs)
        mae = D.is_mae_family(self.store.attrs)
        self.batchnorm = {"auto": [mae], "on": [True], "off": [False], "search": [True, False]}[options.batchnorm]
        # data on the device, once
        self.eval_view = D.load_view(self.store, self.device)
        self.train_view = (D.load_view(self.train_store, self.device, eval_store=self.store)
                           if self.train_store is not None else self.eval_view)
        if self.model is not None and any(r in rows for r in ("scale_knn", "scale_linear")):
            D.embed_view(self.eval_view, self.model)
            if self.train_view is not self.eval_view:
                D.embed_view(self.train_view, self.model)

    # ------------------------------------------------------------------ split / rows
    def split_rows(self, split: int) -> tuple[np.ndarray, np.ndarray]:
        train = self.store.split_indices(split, "train")
        test = self.store.split_indices(split, "test")
        train, test = train[self.labels[train] >= 0], test[self.labels[test] >= 0]
        if self.train_store is not None:
            present = self.train_view.row_of[train] >= 0
            if not present.all():
                self.notes.append(f"split {split}: {int((~present).sum())} train videos are not (done) in "
                                  f"{self.train_store.path} and are left out of probe training")
            train = train[present]
        if len(train) == 0:
            raise ScaleError(f"split {split} of {self.store.path} has no extracted, labelled train videos"
                             + (f" present in {self.train_store.path}" if self.train_store is not None else ""))
        if len(test) == 0:
            raise ScaleError(f"split {split} of {self.store.path} has no extracted, labelled test videos")
        if np.intersect1d(train, test).size:
            raise ScaleError(f"split {split} of {self.store.path} lists a video as both train and test")
        return train, test

    # ------------------------------------------------------------------ k-NN
    def _knn_features(self, kind: str, rows: np.ndarray) -> np.ndarray:
        v = self.eval_view
        idx = v.rows(rows)
        if kind == "knn":
            return v.features[idx].float().mean(1).cpu().numpy()
        sets = torch.nn.functional.normalize(v.set_token[idx].float(), dim=-1)
        if self.options.scale_knn_feature == "set+refined":
            ref = torch.nn.functional.normalize(v.refined[idx].float().mean(1), dim=-1)
            sets = torch.cat([sets, ref], dim=-1)
        return sets.cpu().numpy()

    def run_knn(self, kind: str, train: np.ndarray, test: np.ndarray) -> dict:
        o = self.options
        ks = [int(k) for k in o.knn_k]
        memory, queries = prepare(self._knn_features(kind, train), self._knn_features(kind, test), o.knn_center)
        scores = knn_scores(memory, self.labels[train], queries, ks, self.n_classes, o.knn_temperature)
        acc = {k: topk_accuracy(s, self.labels[test]) for k, s in scores.items()}
        return {**acc[ks[0]], "k": ks[0], "by_k": {str(k): acc[k] for k in ks}, "n_train": int(len(train)),
                "n_test": int(len(test)), **_predictions(scores[ks[0]], test)}

    # ------------------------------------------------------------------ clip heads
    def _parts(self, view: D.View, kind: str) -> list[torch.Tensor]:
        if kind in ("linear", "mlp"):
            return [view.features]
        f = self.options.scale_clip_feature
        clip = {"backbone": [view.features], "refined": [view.refined], "both": [view.features, view.refined]}[f]
        return clip + [view.set_token]

    def _table(self, view: D.View, kind: str, rows: np.ndarray) -> ClipTable:
        idx = view.rows(rows)
        return ClipTable([p[idx] for p in self._parts(view, kind)])

    def _make_head(self, kind: str, in_dim: int, st: TrainSetting) -> torch.nn.Module:
        if kind == "mlp":
            return mlp_head(in_dim, self.n_classes, hidden=st.hidden or 1024, dropout=st.dropout, batchnorm=st.batchnorm)
        return linear_head(in_dim, self.n_classes, batchnorm=st.batchnorm)

    def run_clip_head(self, kind: str, train: np.ndarray, test: np.ndarray, seed: int, task: str) -> dict:
        grid: GridSpec = self.grids[kind]
        fit_rows, val_rows = stratified_holdout(train, self.labels[train], self.options.val_fraction, seed)
        fit_table = self._table(self.train_view, kind, fit_rows)
        val_table = self._table(self.eval_view, kind, val_rows)
        y_fit = torch.as_tensor(self.labels[fit_rows], dtype=torch.long)
        candidates: list[tuple[tuple[float, float], int, TrainSetting]] = []
        groups = grid.groups(self.batchnorm)
        for g, (base, pairs) in enumerate(groups):
            torch.manual_seed(seed)
            heads = [self._make_head(kind, fit_table.dim, base) for _ in pairs]
            fit_clip_heads(fit_table, y_fit, heads, pairs, base, seed, self.progress,
                           f"{task} grid {g + 1}/{len(groups)}")
            for head, (lr, wd) in zip(heads, pairs):
                st = TrainSetting(**{**base.to_dict(), "lr": lr, "weight_decay": wd})
                candidates.append((validation_score(predict_clip_head(head, val_table), self.labels[val_rows]), len(candidates), st))
        best_score, _, best = max(candidates, key=lambda c: (c[0], -c[1]))
        torch.manual_seed(seed)
        train_table = self._table(self.train_view, kind, train)
        head = self._make_head(kind, train_table.dim, best)
        fit_clip_heads(train_table, torch.as_tensor(self.labels[train], dtype=torch.long), [head],
                       [(best.lr, best.weight_decay)], best, seed, self.progress, f"{task} final")
        probs = predict_clip_head(head, self._table(self.eval_view, kind, test))
        return self._trained_result(probs, test, best, best_score, candidates, train, fit_rows, val_rows)

    # ------------------------------------------------------------------ set classifiers
    def _make_set_classifier(self, kind: str, train_features: torch.Tensor):
        if kind == "transformer":
            clf = transformer_classifier(self.transformer_config, self.n_classes, self.options.head)
            if clf.model.standardizes:  # a fresh model: the statistics of the videos it is trained on
                clf.model.set_feature_stats(*feature_stats(train_features))
            return clf
        return finetune_classifier(self.model, self.n_classes, self.options.head)

    def _set_inputs(self, view: D.View, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        idx = view.rows(rows)
        return view.features[idx], view.coords[idx]

    def run_set_classifier(self, kind: str, train: np.ndarray, test: np.ndarray, seed: int, task: str) -> dict:
        grid: GridSpec = self.grids[kind]
        fit_rows, val_rows = stratified_holdout(train, self.labels[train], self.options.val_fraction, seed)
        f_fit, c_fit = self._set_inputs(self.train_view, fit_rows)
        f_val, c_val = self._set_inputs(self.eval_view, val_rows)
        y_fit = torch.as_tensor(self.labels[fit_rows], dtype=torch.long)
        settings = [TrainSetting(**{**base.to_dict(), "lr": lr, "weight_decay": wd, "batchnorm": False})
                    for base, pairs in grid.groups([False]) for lr, wd in pairs]
        candidates = []
        for i, st in enumerate(settings):
            torch.manual_seed(seed)
            clf = self._make_set_classifier(kind, f_fit)
            fit_set_classifier(clf, f_fit, c_fit, y_fit, st, seed, self.progress, f"{task} grid {i + 1}/{len(settings)}")
            candidates.append((validation_score(predict_set_classifier(clf, f_val, c_val), self.labels[val_rows]), i, st))
            del clf
        best_score, _, best = max(candidates, key=lambda c: (c[0], -c[1]))
        torch.manual_seed(seed)
        f_tr, c_tr = self._set_inputs(self.train_view, train)
        clf = self._make_set_classifier(kind, f_tr)
        fit_set_classifier(clf, f_tr, c_tr, torch.as_tensor(self.labels[train], dtype=torch.long), best, seed,
                           self.progress, f"{task} final")
        probs = predict_set_classifier(clf, *self._set_inputs(self.eval_view, test))
        return self._trained_result(probs, test, best, best_score, candidates, train, fit_rows, val_rows)

    def _trained_result(self, probs, test, best, best_score, candidates, train, fit_rows, val_rows) -> dict:
        return {
            **topk_accuracy(probs, self.labels[test]),
            "selected": best.to_dict(),
            "val_top1": best_score[0],
            "grid": [{**st.to_dict(), "val_top1": _finite(score[0]), "val_nll": _finite(-score[1])}
                     for score, _, st in candidates],
            "n_train": int(len(train)), "n_fit": int(len(fit_rows)), "n_val": int(len(val_rows)), "n_test": int(len(test)),
            **_predictions(probs, test),
        }

    # ------------------------------------------------------------------ one split, one seed
    def run_one(self, row: str, split: int, seed: int) -> dict:
        train_all, test = self.split_rows(split)
        train = train_all
        if self.options.low_shot:
            train = class_balanced_subset(train_all, self.labels[train_all], self.options.low_shot, seed)
        task = f"{ROW_LABELS[row]} · split {split} · seed {seed}"
        t0 = time.perf_counter()
        if row in ("knn", "scale_knn"):
            res = self.run_knn(row, train, test)
        elif row in CLIP_HEAD_ROWS:
            res = self.run_clip_head(row, train, test, seed, task)
        else:
            res = self.run_set_classifier(row, train, test, seed, task)
        res["seconds"] = round(time.perf_counter() - t0, 3)
        if self.options.low_shot:
            res["n_train_full"] = int(len(train_all))
        return res


def _finite(x: float) -> Optional[float]:
    """JSON has no infinities: a diverged grid point's score is written as null."""
    return float(x) if np.isfinite(x) else None


def _predictions(scores: np.ndarray, test: np.ndarray) -> dict:
    """Per-video predictions on the test split (store rows and predicted class indices)."""
    return {"test_rows": [int(r) for r in test], "predictions": [int(p) for p in np.asarray(scores).argmax(1)]}


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std())


def aggregate(results: dict[str, dict], key: str) -> dict:
    """Mean and (population) std of top-1/top-5 (and of every k of k-NN) over `results` (keyed by seed or split)."""
    vals = list(results.values())
    out: dict[str, Any] = {}
    for m in ("top1", "top5"):
        out[m], out[f"{m}_std"] = _mean_std([v[m] for v in vals])
    if all("by_k" in v for v in vals):
        out["k"] = vals[0].get("k")
        out["by_k"] = {}
        for k in vals[0]["by_k"]:
            entry = {}
            for m in ("top1", "top5"):
                entry[m], entry[f"{m}_std"] = _mean_std([v["by_k"][k][m] for v in vals])
            out["by_k"][k] = entry
    out[key] = results
    return out


def run_probes(store: str | Path, *, rows: Optional[list[str]] = None, model: Optional[str | Path] = None,
               train_store: Optional[str | Path] = None, options: Optional[ProbeOptions] = None,
               progress: Progress = None) -> dict:
    """Run the requested probes (default: `default_rows`) and return the full result document.

    ``result["results"][row]`` has "top1" and "top5" in percent; with several seeds, their mean and
    "per_seed"; with several splits, the mean over splits, "*_std" and "per_split".
    """
    options = options or ProbeOptions()
    options.validate()
    rows = list(rows) if rows else default_rows(model is not None)
    bad = [r for r in rows if r not in ROWS]
    if bad:
        raise ScaleError(f"unknown probe {bad[0]!r} (known: {', '.join(ROWS)})")
    if model is None and any(r in MODEL_ROWS for r in rows):
        need = [ROW_LABELS[r] for r in rows if r in MODEL_ROWS]
        raise ScaleError(f"{', '.join(need)} need a trained SCALE model: pass --model RUN_DIR")
    rows = [r for r in ROWS if r in rows]  # the paper's row order
    t_start = time.perf_counter()
    runner = _Runner(store, rows, options, model, train_store, progress)
    splits, seeds = options.splits(), options.resolved_seeds()
    units = len(rows) * len(splits) * len(seeds)
    done = 0
    if progress:
        progress("probes", 0, units)
    per: dict[str, dict[str, dict]] = {r: {} for r in rows}
    for split in splits:
        runner.split_rows(split)  # fail early on an empty split
        for row in rows:
            by_seed = {}
            for seed in seeds:
                by_seed[str(seed)] = runner.run_one(row, split, seed)
                done += 1
                if progress:
                    progress("probes", done, units)
            per[row][str(split)] = by_seed[str(seeds[0])] if len(seeds) == 1 else aggregate(by_seed, "per_seed")
    results = {}
    for row in rows:
        results[row] = per[row][str(splits[0])] if len(splits) == 1 else aggregate(per[row], "per_split")
    st = runner.store
    store_attrs = st.attrs
    doc = {
        "results": results,
        "rows": rows,
        "splits": splits,
        "seeds": seeds,
        "config": {**asdict(options), "rows": rows, "batchnorm_resolved": runner.batchnorm,
                   "grids": {r: asdict(runner.grids[r]) for r in rows if r in runner.grids},
                   "transformer_model": runner.transformer_config.to_dict() if "transformer" in rows else None},
        "store": {"path": str(st.path), "fingerprint": st.fingerprint(), "backbone": D.backbone_of(store_attrs),
                  "checkpoint_sha256": store_attrs.get("checkpoint_sha256"), "dataset": store_attrs.get("dataset"),
                  "view": store_attrs.get("view"), "n_videos": st.n_videos, "n_clips": st.n_clips,
                  "feature_dim": st.feature_dim, "n_classes": runner.n_classes},
        "train_store": None if runner.train_store is None else {
            "path": str(runner.train_store.path), "fingerprint": runner.train_store.fingerprint(),
            "view": runner.train_store.attrs.get("view"), "n_clips": runner.train_store.n_clips},
        "model": runner.model_info,
        "protocol": protocol_text(options, rows, str(train_store) if train_store else None, st.n_clips, runner.batchnorm,
                                  runner.grids),
        "notes": list(dict.fromkeys(runner.notes)),
        "device": str(runner.device),
        "seconds": round(time.perf_counter() - t_start, 3),
    }
    return doc
