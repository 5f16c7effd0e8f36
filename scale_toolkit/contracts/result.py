"""A command's `--json` result document: a JSON object marked ``"scale_result": KIND`` by the command
that wrote it, so that only such a file is ever replaced by a later `--json` (ownership.py).

Result files written before the marker existed are recognised by the exact set of keys their command
wrote (`_legacy_kind`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ._read import json_or_none, plain_file

RESULT_MARKER = "scale_result"
RESULT_KINDS = ("probe", "retrieve")


@dataclass(frozen=True)
class ResultDocument:
    """One result: its kind and the command's document (whose keys the command owns)."""

    kind: str
    body: dict[str, Any] = field(default_factory=dict)
    WHAT: ClassVar[str] = "a JSON result file of scale {kind} (marked \"" + RESULT_MARKER + "\": \"{kind}\")"

    def to_json(self) -> dict[str, Any]:
        """The marker first, then the document (a marker inside it is replaced)."""
        return {RESULT_MARKER: self.kind, **{k: v for k, v in self.body.items() if k != RESULT_MARKER}}

    @classmethod
    def from_json(cls, doc: object) -> "ResultDocument":
        """A parsed result file; ValueError when it is not one of scale's."""
        kind = _kind_of(doc)
        if kind is None or not isinstance(doc, dict):
            raise ValueError("not a scale result document")
        return cls(kind, {k: v for k, v in doc.items() if k != RESULT_MARKER})

    @staticmethod
    def kind_of_file(path: str | os.PathLike[str]) -> str | None:
        """The kind of a result JSON scale wrote ("probe", "retrieve"), or None for any other file."""
        path = Path(path)
        return _kind_of(json_or_none(path) if plain_file(path) else None)

    @staticmethod
    def is_ours(path: str | os.PathLike[str], kind: str) -> bool:
        return ResultDocument.kind_of_file(path) == kind


def _kind_of(doc: object) -> str | None:
    if not isinstance(doc, dict):
        return None
    marked = doc.get(RESULT_MARKER)
    if marked is not None:
        return marked if marked in RESULT_KINDS else None
    return _legacy_kind(doc)


# the keys an unmarked result of an earlier scale holds: probe's result_document, and the resolved
# flags `scale retrieve` recorded under "config"; a user's JSON matching either exactly is implausible
_LEGACY_PROBE_KEYS = {"results", "rows", "splits", "seeds", "config", "store", "protocol", "notes"}
_LEGACY_RETRIEVE_FLAGS = {"store", "split", "model", "build_index", "index", "query", "top", "json_out", "index_type"}


def _legacy_kind(doc: dict[str, Any]) -> str | None:
    if _LEGACY_PROBE_KEYS <= doc.keys() and isinstance(doc["store"], dict) and "fingerprint" in doc["store"]:
        return "probe"
    if isinstance(doc.get("config"), dict) and _LEGACY_RETRIEVE_FLAGS <= doc["config"].keys():
        return "retrieve"
    return None
