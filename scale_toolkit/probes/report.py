"""The result document as table rows (layout of the paper's Tables 4/5)."""
from __future__ import annotations

from .protocol import ROW_LABELS


def _fmt(entry: dict, metric: str) -> str:
    value = entry[metric]
    std = entry.get(f"{metric}_std")
    return f"{value:.2f}" if std is None else f"{value:.2f} ± {std:.2f}"


def table_rows(doc: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per probe in the paper's order, top-1 and top-5 (mean ± std where several
    splits or seeds were run), plus the per-split top-1 with `--split all`, and one row per extra k."""
    splits = [str(s) for s in doc["splits"]]
    header = ["probe", "top-1", "top-5"] + ([f"split {s} top-1" for s in splits] if len(splits) > 1 else [])
    rows = []
    for key in doc["rows"]:
        res = doc["results"][key]
        label = ROW_LABELS[key] + (f" (k={res['k']})" if "k" in res and len(res.get("by_k", {})) > 1 else "")
        if doc.get("select_on_test") and key not in ("knn", "scale_knn"):
            label += " [TEST-SELECTED]"  # the official code's selection on the test split: optimistic
        row = [label, _fmt(res, "top1"), _fmt(res, "top5")]
        if len(splits) > 1:
            row += [f"{res['per_split'][s]['top1']:.2f}" for s in splits]
        rows.append(row)
        for k, acc in list(res.get("by_k", {}).items())[1:]:
            extra = [f"{ROW_LABELS[key]} (k={k})", _fmt(acc, "top1"), _fmt(acc, "top5")]
            if len(splits) > 1:
                extra += [f"{res['per_split'][s]['by_k'][k]['top1']:.2f}" for s in splits]
            rows.append(extra)
    return header, rows
