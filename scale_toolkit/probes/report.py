"""The probe run's outputs: per-video predictions, the mean over seeds and splits, the protocol in
words, the result document, and its table rows (layout of the paper's Tables 4/5)."""
from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Mapping, Optional

import numpy as np

from ..contracts.probe_result import ProbeResult
from ..store.attributes import StoreAttrs
from .grid import GridSpec
from .options import ProbeOptions
from .rows import ROW, ROW_LABELS, rows_of

if TYPE_CHECKING:
    from .context import ProbeContext
    from .runner import ProbeRunner


def finite_or_none(x: float) -> Optional[float]:
    """JSON has no infinities: a diverged grid point's score is written as null.

    >>> finite_or_none(0.5), finite_or_none(float("-inf"))
    (0.5, None)
    """
    return float(x) if np.isfinite(x) else None


def video_predictions(scores: np.ndarray, test: np.ndarray) -> dict:
    """Per-video predictions on the test split (store rows and predicted class indices).

    >>> video_predictions(np.array([[0.2, 0.8], [0.9, 0.1]]), np.array([4, 7]))
    {'test_rows': [4, 7], 'predictions': [1, 0]}
    """
    return {"test_rows": [int(r) for r in test], "predictions": [int(p) for p in np.asarray(scores).argmax(1)]}


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std())


def aggregate(results: dict[str, dict], key: str) -> dict:
    """Mean and (population) std of top-1/top-5 (and of every k of k-NN) over `results` (keyed by seed or split).

    >>> aggregate({"0": {"top1": 50.0, "top5": 90.0}, "1": {"top1": 70.0, "top5": 100.0}}, "per_seed")["top1_std"]
    10.0
    """
    runs = list(results.values())
    out: dict[str, Any] = {}
    for metric in ("top1", "top5"):
        out[metric], out[f"{metric}_std"] = _mean_std([run[metric] for run in runs])
    if all("by_k" in run for run in runs):
        out["k"] = runs[0].get("k")
        out["by_k"] = {}
        for k in runs[0]["by_k"]:
            entry = {}
            for metric in ("top1", "top5"):
                entry[metric], entry[f"{metric}_std"] = _mean_std([run["by_k"][k][metric] for run in runs])
            out["by_k"][k] = entry
    out[key] = results
    return out


def _grid_text(grid: GridSpec, row: str) -> str:
    def values(v):
        return "{" + ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v) + "}"

    text = (f"{ROW_LABELS[row]} lr {values(grid.lr)} x wd {values(grid.weight_decay)}, {'/'.join(grid.optimizer)}, "
            f"batch {values(grid.batch_size)} videos, {grid.epochs} epochs")
    if ROW[row].head == "mlp":
        text += f", width {values(grid.hidden)}, dropout {values(grid.dropout)}"
    if grid.patience:
        text += f", patience {grid.patience}"
    return text


def protocol_text(options: ProbeOptions, rows: list[str], train_store: Optional[str], n_clips: int,
                  batchnorm: list[bool], grids: Optional[dict[str, GridSpec]] = None) -> str:
    """The standard protocol, in words, for the table footer and the JSON."""
    seeds = options.resolved_seeds()
    parts = []
    if rows_of(rows, "knn"):
        feat = "SET token" + (" ++ mean refined clip" if options.scale_knn_feature == "set+refined" else "")
        parts.append(f"k-NN: k={','.join(map(str, options.knn_k))}, cosine on L2-normalised features "
                     f"(centring: {options.knn_center}), vote exp(sim/{options.knn_temperature:g}); "
                     f"memory = train split (eval clips), "
                     f"queries = test split; k-NN feature = mean of the {n_clips} clip features, SCALE_kNN = {feat}.")
    trained = [r for r in rows if ROW[r].trained]
    if trained:
        bn = {(True,): "on", (False,): "off (fixed 1/RMS input scale instead)",
              (True, False): "searched"}.get(tuple(batchnorm), "?")
        parts.append(f"Trained probes: hyper-parameters chosen by top-1 (ties: NLL) on a class-stratified "
                     f"{options.val_fraction:.0%} "
                     f"validation hold-out of the train split, then retrained on the full train split and evaluated "
                     f"once on the test split (grid '{options.grid_preset}'"
                     f"{', overridden' if options.grid or options.epochs else ''}). Predictions average the per-clip "
                     f"softmax over the clips; BatchNorm without affine before clip heads: {bn}.")
        if grids:
            parts.append("Grids: " + "; ".join(_grid_text(grids[r], r) for r in trained) + ".")
            if any(grids[r].patience for r in trained):
                parts.append("Early stopping (grids with a patience): a grid point is scored on the validation "
                             "hold-out after every epoch and stops once its top-1 has been 100 % for `patience` "
                             "epochs, scored as it stopped (below 100 % it runs its whole schedule); the refit "
                             "runs the selected point's schedule (the cosine over the grid's epochs) for the "
                             "epochs that point ran.")
        clips = "--train-store " + train_store if train_store else "eval clips of the train videos"
        parts.append(f"Probe training clips: {clips}.")
    if "scale_linear" in rows:
        inputs = {"backbone": "[C_i || SET]", "refined": "[refined_i || SET]", "both": "[C_i || refined_i || SET]"}
        parts.append(f"SCALE_linear input per clip: {inputs[options.scale_clip_feature]}.")
    if rows_of(rows, "set_classifier"):
        parts.append("Transformer / SCALE_ft: SCALE architecture (random init / trained), linear head on "
                     + ("[refined_i || SET] per clip" if options.head == "clip_set" else "the SET token") + ".")
    parts += [ROW[r].text.format(n_clips=n_clips) for r in rows if ROW[r].text]  # rows beyond the paper's
    if options.low_shot:
        parts.append(f"Low-shot: probes trained on a class-balanced {options.low_shot:.0%} of the train split "
                     f"(ceil per class, >= 1), full test split.")
    parts.append(f"Seeds: {', '.join(map(str, seeds))}" + (" (mean ± std over seeds)" if len(seeds) > 1 else "") + ".")
    return " ".join(parts)


def _keyed_by_video(results: dict, store) -> dict:
    """Every per-video prediction list also as {video id: predicted class name} ("by_video"):
    store rows mean nothing outside the store."""
    ids, names = store.video_ids, store.class_names

    def add(entry: dict) -> dict:
        if "test_rows" in entry:
            entry = {**entry, "by_video": {ids[r]: (names[p] if p < len(names) else str(p))
                                           for r, p in zip(entry["test_rows"], entry["predictions"])}}
        return {k: (add(v) if isinstance(v, dict) and k != "by_video" else v) for k, v in entry.items()}

    return {row: add(res) for row, res in results.items()}


def result_document(context: ProbeContext, runner: ProbeRunner, results: dict[str, dict], train_store_path: Optional[str],
                    seconds: float) -> ProbeResult:
    """The full result of a probe run, either protocol: numbers, config, inputs with fingerprints, protocol and notes."""
    options, rows, store = context.options, context.rows, context.store
    store_attrs, train_store = StoreAttrs.of(store), context.train_store
    return ProbeResult(
        results=_keyed_by_video(results, store),
        rows=rows,
        splits=options.splits(),
        seeds=options.resolved_seeds(),
        config={**asdict(options), "rows": rows, "batchnorm_resolved": context.batchnorm,
                "transformer_model": runner.transformer_config.to_dict() if "transformer" in rows else None,
                **runner.protocol_config(rows)},
        store={"path": str(store.path), "fingerprint": store.fingerprint(),
               "backbone": store_attrs.backbone,
               "checkpoint_sha256": store_attrs.checkpoint_sha256, "dataset": store_attrs.dataset,
               "view": store_attrs.view, "n_videos": store.n_videos, "n_clips": store.n_clips,
               "feature_dim": store.feature_dim, "n_classes": context.n_classes},
        train_store=None if train_store is None else {
            "path": str(train_store.path), "fingerprint": train_store.fingerprint(),
            "view": StoreAttrs.of(train_store).view, "n_clips": train_store.n_clips},
        model=context.model.info if context.model is not None else None,
        protocol_name=options.protocol,
        select_on_test=options.select_on_test,
        protocol=runner.protocol_text(rows, train_store_path),
        notes=list(dict.fromkeys(context.notes)),
        device=str(context.device),
        seconds=round(seconds, 3),
    )


def table_title(doc: Mapping[str, Any], store_name: str) -> str:
    """The table's title: dataset (else `store_name`), backbone, split, low-shot, protocol, and a
    warning when rows were selected on the test split.

    >>> table_title({"store": {"dataset": "ucf101", "backbone": {"name": "tiny"}}, "protocol_name": "standard",
    ...              "config": {"split": "1", "low_shot": 0.1}, "select_on_test": False}, "s.zarr")
    'ucf101 · tiny · split 1 · low-shot 0.1 · protocol standard'
    """
    config, store = doc["config"], doc["store"]
    low_shot = config.get("low_shot")
    return (f"{store.get('dataset') or store_name} · {store['backbone'].get('name') or 'features'} · "
            f"split {config['split']}" + (f" · low-shot {low_shot:g}" if low_shot else "")
            + f" · protocol {doc['protocol_name']}" + (" · SELECTED ON TEST" if doc["select_on_test"] else ""))


def _format(entry: dict, metric: str) -> str:
    value = entry[metric]
    std = entry.get(f"{metric}_std")
    return f"{value:.2f}" if std is None else f"{value:.2f} ± {std:.2f}"


def table_rows(doc: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per probe in the paper's order, top-1 and top-5 (mean ± std where several
    splits or seeds were run), plus the per-split top-1 with `--split all`, and one row per extra k."""
    splits = [str(s) for s in doc["splits"]]
    header = ["probe", "top-1", "top-5"] + ([f"split {s} top-1" for s in splits] if len(splits) > 1 else [])
    rows = []
    for key in doc["rows"]:
        res = doc["results"][key]
        label = ROW_LABELS[key] + (f" (k={res['k']})" if "k" in res and len(res.get("by_k", {})) > 1 else "")
        if doc.get("select_on_test") and ROW[key].trained:
            label += " [TEST-SELECTED]"  # the official code's selection on the test split: optimistic
        row = [label, _format(res, "top1"), _format(res, "top5")]
        if len(splits) > 1:
            row += [f"{res['per_split'][s]['top1']:.2f}" for s in splits]
        rows.append(row)
        for k, acc in list(res.get("by_k", {}).items())[1:]:
            extra = [f"{ROW_LABELS[key]} (k={k})", _format(acc, "top1"), _format(acc, "top5")]
            if len(splits) > 1:
                extra += [f"{res['per_split'][s]['by_k'][k]['top1']:.2f}" for s in splits]
            rows.append(extra)
    return header, rows
