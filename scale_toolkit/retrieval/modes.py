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

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import ScaleError
from .evaluate import DEFAULT_KS, evaluate_retrieval
from .index import IndexParams
from .models import RetrievalModel, load_retrieval_model  # torch only when a model is loaded

# per-video lists of the sidecar: in the index file already, too long for a result document
_SIDECAR_LISTS = ("video_ids", "labels", "class_names", "center_vector", "media")


class Mode(str, Enum):
    EVALUATE = "evaluate"
    BUILD_INDEX = "build-index"
    QUERY = "query"


@dataclass(frozen=True)
class RetrieveOptions:
    """Everything that decides a `scale retrieve` run besides its paths: the defaults of its flags.

    >>> options = RetrieveOptions.from_flags(split=None, ks=None, top=5)
    >>> options.split, options.ks, options.top, options.descriptor
    (None, (1, 5, 10, 20, 50), 5, 'set')
    """

    split: Optional[int] = None  # evaluation: None = split 1; an index: its train videos, None = every extracted one
    descriptor: str = "set"  # the SCALE descriptor, with a model: set | set+mean | refined (descriptors.py)
    ks: tuple[int, ...] = DEFAULT_KS  # the k of R@k
    center: bool = False  # evaluation: each split by its own mean (CoCLR); an index: by the gallery mean
    index_params: IndexParams = field(default_factory=IndexParams)
    thumbs: Optional[bool] = None  # an index's posters and previews for `scale serve`; None: when the videos are there
    top: int = 10  # nearest videos of a query
    include_self: bool = False  # keep a query video that is in the gallery in its own results
    allow_incomplete: bool = False  # leave out (and count) videos still pending extraction
    device: str = "cpu"  # for the SCALE model and for embedding a query file

    @classmethod
    def from_flags(cls, **given: Any) -> "RetrieveOptions":
        """The options from flags, where None means "not given" (the default)."""
        values = {name: value for name, value in given.items() if value is not None}
        if "ks" in values:
            values["ks"] = tuple(values["ks"]) or DEFAULT_KS
        return cls(**values)


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


def load_scale_model(targets: RetrieveTargets, device: str = RetrieveOptions.device) -> Optional[RetrievalModel]:
    """--model, loaded when a mode of this run reads it (``RetrieveTargets.loads_model``), else None."""
    if not targets.loads_model():
        return None
    return load_retrieval_model(targets.model, device)


def evaluate_store(store: Path, options: RetrieveOptions, model: Optional[RetrievalModel] = None) -> dict:
    """R@k of split ``options.split`` (default 1): its test videos query its train videos (see ``evaluate``);
    with a model, also of its SCALE ``options.descriptor``."""
    from ..store import FeatureStore

    module, info = model if model is not None else (None, None)
    return evaluate_retrieval(FeatureStore.open(store), options.split or 1, model=module, model_info=info,
                              scale_descriptor=options.descriptor, ks=tuple(options.ks), center=options.center,
                              index_params=options.index_params, allow_incomplete=options.allow_incomplete,
                              device=options.device)


def build_store_index(store: Path, index: Path, options: RetrieveOptions, model: Optional[RetrievalModel] = None,
                      media_progress: Optional[Callable[[int, int], None]] = None) -> dict:
    """Write a gallery index of the store (the train videos of ``options.split``, or every extracted
    one): the SCALE ``options.descriptor`` when a model is given, else the mean of the clip features.
    ``media_progress(done, total)`` follows the posters and previews (``options.thumbs``)."""
    from ..store import FeatureStore
    from .query import build_gallery_index

    module, info = model if model is not None else (None, None)
    return build_gallery_index(FeatureStore.open(store), index, split=options.split, model=module, model_info=info,
                               descriptor=options.descriptor if module is not None else None, center=options.center,
                               params=options.index_params, allow_incomplete=options.allow_incomplete,
                               device=options.device, thumbs=options.thumbs, thumbs_progress=media_progress)


def build_summary(info: dict) -> dict:
    """What a result document keeps of a build: everything but the sidecar's per-video lists.

    >>> build_summary({"n_videos": 2, "video_ids": ["a", "b"], "media": None})
    {'n_videos': 2}
    """
    return {key: value for key, value in info.items() if key not in _SIDECAR_LISTS}


def query_targets(targets: RetrieveTargets, options: RetrieveOptions) -> dict:
    """The ``options.top`` nearest gallery videos of ``targets.query`` in ``targets.index_to_query()``."""
    from .query import query_index

    return query_index(targets.index_to_query(), targets.query, top=options.top, store_path=targets.store_for_query(),
                       device=options.device, exclude_self=not options.include_self)
