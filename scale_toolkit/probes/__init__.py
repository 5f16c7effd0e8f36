"""Probes of the SCALE paper's evaluation (§4.1, Tables 4-5), on feature stores only.

One module per probe — `knn`, `linear`, `mlp`, `transformer` (Transformer and SCALE_ft) — plus
`subsets` (validation hold-out, low-shot), `grid` (hyper-parameter grids), `fit` (training loops),
`rows` (the rows, one declaration each; `row_functions`: their functions), `options`
(the rows and options a run is asked for), `context` (stores, views and model, loaded once), `protocol` (the
runner: select on validation, retrain, test once), `official` (the official eval code's protocol)
and `report` (the result document and its table).
"""
from ..lazy_exports import lazy_exports

__all__ = ["ROWS", "PAPER_ROWS", "ROW_LABELS", "ProbeOptions", "default_rows", "probe_request", "rows_for", "run_probes",
           "knn_evaluate", "knn_scores", "class_balanced_subset", "stratified_holdout"]
# `options` alone imports no torch: `scale probe --help` reads its flag defaults from it
__getattr__, __dir__ = lazy_exports(__name__, {
    **{name: ".options" for name in ("ROWS", "ROW_LABELS", "ProbeOptions", "default_rows", "probe_request", "rows_for")},
    "PAPER_ROWS": ".rows", "run_probes": ".protocol", "knn_evaluate": ".knn", "knn_scores": ".knn",
    "class_balanced_subset": ".subsets", "stratified_holdout": ".subsets"})
