"""What a probe protocol's runner is: the interface `run_probes` drives (probes/protocol.py), and the part
of running one row that both protocols share.

A runner (``StandardRunner`` in protocol.py, ``OfficialRunner`` in official.py) runs one row on one split
with one seed and describes its protocol for the result document. Shared here: the split's train and
test videos, the low-shot subset (each protocol its own rule), the timing, and the k-NN row (prepare,
vote, score, record), which differs between the protocols only in its vectors and its centring.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Optional

import numpy as np

from .knn import knn_scores, prepare, search_record
from .metrics import topk_accuracy
from .report import video_predictions
from .rows import ROW

if TYPE_CHECKING:
    from ..model.config import ScaleConfig
    from .context import ProbeContext


class ProbeRunner(ABC):
    """One protocol's rows on a ProbeContext; ``run_one`` gives a row's result entry."""

    ctx: ProbeContext
    transformer_config: ScaleConfig  # the Transformer row's architecture (the result's config records it)

    def __init__(self, context: ProbeContext) -> None:
        self.ctx = context

    # ------------------------------------------------------------------ the protocol, in the result document
    @abstractmethod
    def protocol_config(self, rows: list[str]) -> dict:
        """Protocol-specific entries of the result's config."""

    @abstractmethod
    def protocol_text(self, rows: list[str], train_store: Optional[str]) -> str:
        """Every choice of the protocol, in words."""

    # ------------------------------------------------------------------ what differs between protocols
    @abstractmethod
    def low_shot_subset(self, train: np.ndarray, seed: int) -> np.ndarray:
        """The low-shot train rows (``options.low_shot`` of each class) of one seed."""

    @abstractmethod
    def knn_vectors(self, kind: str, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(memory, queries) of a k-NN row: one vector per train video, one per test video."""

    @abstractmethod
    def knn_center(self) -> str:
        """The centring of the k-NN vectors (knn.CENTERING)."""

    @abstractmethod
    def run_trained(self, row: str, split: int, seed: int, train: np.ndarray, test: np.ndarray) -> dict:
        """A trained row's result entry: trained on `train`, tested on `test`."""

    # ------------------------------------------------------------------ shared
    def run_one(self, row: str, split: int, seed: int) -> dict:
        """One row on one split with one seed (low-shot: on that seed's subset of the train videos)."""
        ctx = self.ctx
        train_all, test = ctx.split_rows(split)
        train = self.low_shot_subset(train_all, seed) if ctx.options.low_shot else train_all
        started = time.perf_counter()
        if ROW[row].method == "knn":
            result = self.run_knn(row, train, test)
        else:
            result = self.run_trained(row, split, seed, train, test)
        result["seconds"] = round(time.perf_counter() - started, 3)
        if ctx.options.low_shot:
            result["n_train_full"] = int(len(train_all))
        return result

    def run_knn(self, kind: str, train: np.ndarray, test: np.ndarray) -> dict:
        """A k-NN row with every k: memory = the train videos, queries = the test videos."""
        options, labels = self.ctx.options, self.ctx.labels
        ks = [int(k) for k in options.knn_k]
        memory, queries = prepare(*self.knn_vectors(kind, train, test), self.knn_center())
        scores = knn_scores(memory, labels[train], queries, ks, self.ctx.n_classes, options.knn_temperature)
        accuracy = {k: topk_accuracy(s, labels[test]) for k, s in scores.items()}
        return {**accuracy[ks[0]], "k": ks[0], "by_k": {str(k): accuracy[k] for k in ks}, "n_train": int(len(train)),
                "n_test": int(len(test)), **video_predictions(scores[ks[0]], test),
                **search_record(kind, scores, self.ctx.notes)}
