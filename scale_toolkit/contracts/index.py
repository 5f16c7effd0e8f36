"""A retrieval index on disk: INDEX (FAISS), its sidecar INDEX.json (what the rows are, which file it
describes) and its media folder INDEX.media/ (a poster and a preview per gallery video, for `scale serve`).

The sidecar's own header - the fields that say it is scale's and which index file it describes - is
`SidecarHeader`; the rest of the sidecar (video ids, labels, the descriptor's settings) belongs to
retrieval/query.py, which builds it.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from ._read import json_or_none, plain_dir, plain_file

SIDECAR_FORMAT = "scale-retrieval-index"
SIDECAR_VERSION = 1
SIDECAR_SUFFIX = ".json"
MEDIA_SUFFIX = ".media"
# a media file: <key>.poster.jpg / <key>.preview.webp (key: 20 hex digits), or an atomic write's temp file
_MEDIA_FILE = re.compile(r"^([0-9a-f]{20}\.(poster\.jpg|preview\.webp)|\..+\.tmp)$")


def media_names(key: str) -> dict[str, str]:
    """The poster and preview file names of one gallery video inside INDEX.media/.

    >>> media_names("0123456789abcdef0123")["poster"]
    '0123456789abcdef0123.poster.jpg'
    """
    return {"poster": f"{key}.poster.jpg", "preview": f"{key}.preview.webp"}


@dataclass(frozen=True)
class SidecarHeader:
    """The fields that make a JSON file an index sidecar and tie it to one index file (size and sha256)."""

    index_file: str
    index_bytes: int
    index_sha256: str
    ntotal: int
    dim: int
    format: str = SIDECAR_FORMAT
    version: int = SIDECAR_VERSION

    def to_json(self) -> dict[str, Any]:
        """In the order the sidecar has always listed them (format and version first)."""
        d = asdict(self)
        return {"format": d.pop("format"), "version": d.pop("version"), **d}

    @classmethod
    def from_json(cls, doc: object) -> "SidecarHeader":
        """The header of a parsed sidecar; ValueError when it is not one."""
        if not isinstance(doc, dict) or doc.get("format") != SIDECAR_FORMAT:
            raise ValueError("not a scale retrieval index sidecar")
        try:
            return cls(index_file=str(doc["index_file"]), index_bytes=int(doc["index_bytes"]),
                       index_sha256=str(doc["index_sha256"]), ntotal=int(doc["ntotal"]), dim=int(doc["dim"]),
                       version=int(doc.get("version", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"index sidecar header incomplete: {exc}") from None


@dataclass(frozen=True)
class IndexFiles:
    """The three paths of one index."""

    index: Path
    WHAT: ClassVar[str] = "a scale retrieval index (with its .json sidecar)"

    @classmethod
    def at(cls, index: str | os.PathLike[str]) -> "IndexFiles":
        return cls(Path(index))

    @property
    def sidecar(self) -> Path:
        """INDEX.json (e.g. ucf.faiss -> ucf.faiss.json)."""
        return self.index.with_name(self.index.name + SIDECAR_SUFFIX)

    @property
    def media(self) -> Path:
        """INDEX.media/ beside INDEX."""
        return self.index.with_name(self.index.name + MEDIA_SUFFIX)

    @staticmethod
    def is_ours(path: str | os.PathLike[str]) -> bool:
        """An index file written by `scale retrieve --build-index` (its sidecar says so)."""
        files = IndexFiles.at(path)
        return plain_file(files.index) and IndexFiles.is_sidecar(files.sidecar)

    @staticmethod
    def is_sidecar(path: str | os.PathLike[str]) -> bool:
        path = Path(path)
        meta = json_or_none(path) if plain_file(path) else None
        return isinstance(meta, dict) and meta.get("format") == SIDECAR_FORMAT

    @staticmethod
    def is_media_dir(path: str | os.PathLike[str]) -> bool:
        """An index's media folder: INDEX.media/ holding only scale's poster/preview names (or nothing)."""
        path = Path(path)
        if not (plain_dir(path) and path.name.endswith(MEDIA_SUFFIX)):
            return False
        return all(_MEDIA_FILE.match(p.name) and plain_file(p) for p in path.iterdir())

    @staticmethod
    def owns_media_dir(path: str | os.PathLike[str]) -> bool:
        """A media folder whose index is beside it."""
        path = Path(path)
        return IndexFiles.is_media_dir(path) and IndexFiles.is_ours(path.with_name(path.name[: -len(MEDIA_SUFFIX)]))
