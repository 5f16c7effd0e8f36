"""What `scale probe` returns and writes with `--json`, whichever protocol ran (standard or official).

``ProbeResult`` is the document as a frozen dataclass whose fields are its keys, in the order the
file lists them. It also reads as a mapping of those keys (``doc["results"]["knn"]["top1"]``), as
the parsed file does, so code reads a fresh result and one loaded from disk the same way.
Each row's entry (``results[row]``) stays a plain dict: what it holds depends on how the row runs
(k-NN: ``k`` and ``by_k``; trained rows: the selected grid point and the grid, or the official schedule).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any, Optional


@dataclass(frozen=True)
class ProbeResult(Mapping[str, Any]):
    """One probe run: the numbers, what produced them, and how."""

    results: dict[str, dict[str, Any]]  # row -> top1, top5 (percent), per split / seed, predictions
    rows: list[str]  # the rows run, in the paper's order
    splits: list[int]
    seeds: list[int]
    config: dict[str, Any]  # every ProbeOptions field, the rows, the resolved BatchNorm, the protocol's own entries
    store: dict[str, Any]  # path, fingerprint, backbone, view, sizes of the probed store
    train_store: Optional[dict[str, Any]]
    model: Optional[dict[str, Any]]  # the SCALE model: path, file, fingerprint, config
    protocol_name: str  # standard | official
    select_on_test: bool
    protocol: str  # the protocol in words
    notes: list[str]
    device: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """The document as JSON writes it (the fields in order)."""
        return {key: getattr(self, key) for key in _KEYS}

    @classmethod
    def from_json(cls, doc: object) -> ProbeResult:
        """A parsed probe result (the body of a result file: contracts/result.py); ValueError when it is not one."""
        if not isinstance(doc, dict) or not set(_KEYS) <= doc.keys():
            missing = sorted(set(_KEYS) - set(doc)) if isinstance(doc, dict) else []
            raise ValueError("not a probe result" + (f" (no {', '.join(missing)})" if missing else ""))
        return cls(**{key: doc[key] for key in _KEYS})

    # a read-only mapping of the document's keys, like the parsed file
    def __getitem__(self, key: str) -> Any:
        if key not in _KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    def __len__(self) -> int:
        return len(_KEYS)


_KEYS: tuple[str, ...] = tuple(spec.name for spec in fields(ProbeResult))
