"""`scale retrieve`'s three modes as functions: evaluate R@k on a split, build a gallery index,
query an index; and the rules for which flags go with which mode.

A run is one of: evaluate (``--store``), build (``--store --build-index``, optionally followed by
a query of the new index), or query (``--index --query``).

Example:
    >>> RetrieveTargets(store=Path("eval15.zarr")).modes()
    [<Mode.EVALUATE: 'evaluate'>]
    >>> RetrieveTargets(store=Path("eval15.zarr"), build_index=Path("g.faiss"), query="v.avi").modes()
    [<Mode.BUILD_INDEX: 'build-index'>, <Mode.QUERY: 'query'>]
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..errors import ScaleError
from ..store import FeatureStore
from .evaluate import DEFAULT_KS
from .index import IndexParams

# per-video lists of the sidecar: in the index file already, too long for a result document
_SIDECAR_LISTS = ("video_ids", "labels", "class_names", "center_vector", "media")


class Mode(str, Enum):
    EVALUATE = "evaluate"
    BUILD_INDEX = "build-index"
    QUERY = "query"


@dataclass(frozen=True)
class RetrieveTargets:
    """What `scale retrieve`'s path flags point at; ``modes()`` says what runs, or why the flags clash."""

    store: Optional[Path] = None
    model: Optional[Path] = None
    build_index: Optional[Path] = None
    index: Optional[Path] = None
    query: Optional[str] = None

    def modes(self) -> list[Mode]:
        """The modes to run, in order; a ScaleError for flags that do not go together.

        >>> RetrieveTargets(index=Path("g.faiss")).modes()
        Traceback (most recent call last):
        ...
        scale_toolkit.errors.ScaleError: --index is for queries; add --query VIDEO_FILE|VIDEO_ID (to evaluate R@k, use --store)
        """
        if self.query is not None and self.index is None and self.build_index is None:
            raise ScaleError("--query needs --index INDEX (build one with --store STORE.zarr --build-index INDEX)")
        if self.query is None and self.index is not None:
            raise ScaleError("--index is for queries; add --query VIDEO_FILE|VIDEO_ID (to evaluate R@k, use --store)")
        if self.model is not None and self.index is not None:
            raise ScaleError("--model is not used with --index: a query uses the model recorded in the index's sidecar")
        if (self.build_index is not None or self.query is None) and self.store is None:
            raise ScaleError("--store STORE.zarr is required (to evaluate R@k or to --build-index)")
        if self.build_index is not None:
            return [Mode.BUILD_INDEX] + ([Mode.QUERY] if self.query is not None else [])
        return [Mode.QUERY] if self.query is not None else [Mode.EVALUATE]

    def loads_model(self) -> bool:
        """--model is read by evaluation and by building an index (a query reads the index's own)."""
        return self.model is not None and (self.build_index is not None or self.query is None)

    def index_to_query(self) -> Path:
        """--index, or the index this run has just built."""
        return self.index if self.index is not None else self.build_index

    def store_for_query(self) -> Optional[Path]:
        """--store overrides the store recorded in an existing index; a just-built index already names it."""
        return self.store if self.index is not None else None


def evaluate_store(store: Path, *, split: Optional[int], model: Any = None, model_info: Optional[dict] = None,
                   descriptor: str = "set", ks: Optional[Sequence[int]] = None, center: bool = False,
                   params: Optional[IndexParams] = None, allow_incomplete: bool = False, device: str = "cpu") -> dict:
    """R@k of split `split` (default 1): its test videos query its train videos (see ``evaluate``)."""
    from .evaluate import evaluate_retrieval

    return evaluate_retrieval(FeatureStore.open(store), split or 1, model=model, model_info=model_info,
                              scale_descriptor=descriptor, ks=tuple(ks or DEFAULT_KS), center=center,
                              index_params=params, allow_incomplete=allow_incomplete, device=device)


def build_store_index(store: Path, index: Path, *, split: Optional[int], model: Any = None,
                      model_info: Optional[dict] = None, descriptor: str = "set", center: bool = False,
                      params: Optional[IndexParams] = None, allow_incomplete: bool = False, device: str = "cpu",
                      thumbs: Optional[bool] = None,
                      thumbs_progress: Optional[Callable[[int, int], None]] = None) -> dict:
    """Write a gallery index of the store (its `split` train videos, or every extracted one); the
    SCALE `descriptor` when a model is given, else the mean of the clip features."""
    from .query import build_gallery_index

    return build_gallery_index(FeatureStore.open(store), index, split=split, model=model, model_info=model_info,
                               descriptor=descriptor if model is not None else None, center=center, params=params,
                               allow_incomplete=allow_incomplete, device=device, thumbs=thumbs,
                               thumbs_progress=thumbs_progress)


def build_summary(info: dict) -> dict:
    """What a result document keeps of a build: everything but the sidecar's per-video lists.

    >>> build_summary({"n_videos": 2, "video_ids": ["a", "b"], "media": None})
    {'n_videos': 2}
    """
    return {key: value for key, value in info.items() if key not in _SIDECAR_LISTS}


def query_targets(targets: RetrieveTargets, *, top: int = 10, device: str = "cpu", include_self: bool = False) -> dict:
    """The `top` nearest gallery videos of ``targets.query`` in ``targets.index_to_query()``."""
    from .query import query_index

    return query_index(targets.index_to_query(), targets.query, top=top, store_path=targets.store_for_query(),
                       device=device, exclude_self=not include_self)
