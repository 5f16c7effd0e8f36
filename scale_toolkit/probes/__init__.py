"""Probes of the SCALE paper's evaluation (§4.1, Tables 4-5), on feature stores only.

One module per probe — `knn`, `linear`, `mlp`, `transformer` (Transformer and SCALE_ft) — plus
`subsets` (validation hold-out, low-shot), `grid` (hyper-parameter grids), `fit` (training loops),
`options` (rows and options), `context` (stores, views and model, loaded once), `protocol` (the
runner: select on validation, retrain, test once), `official` (the official eval code's protocol)
and `report` (the result document and its table).
"""
from .knn import knn_evaluate, knn_scores
from .options import ROW_LABELS, ROWS, ProbeOptions, default_rows, probe_request, rows_for
from .protocol import run_probes
from .subsets import class_balanced_subset, stratified_holdout

__all__ = ["ROWS", "ROW_LABELS", "ProbeOptions", "default_rows", "probe_request", "rows_for", "run_probes",
           "knn_evaluate", "knn_scores", "class_balanced_subset", "stratified_holdout"]
