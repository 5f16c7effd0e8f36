"""Reading a store's attributes (or the copy an index sidecar or a training run records of them) the same
way everywhere: ``StoreAttrs.of(store)``; and the one check that a SCALE model can read a store's features."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ScaleError

if TYPE_CHECKING:
    from .feature_store import FeatureStore


def backbone_of(attrs: dict) -> dict:
    """The store's backbone attribute as a dict (name/family may be missing); older stores hold only the name.

    >>> backbone_of({"backbone": "tiny"}), backbone_of({"backbone": {"name": "svt", "family": "timesformer"}})
    ({'name': 'tiny'}, {'name': 'svt', 'family': 'timesformer'})
    >>> backbone_of({})
    {}
    """
    backbone = attrs.get("backbone")
    if isinstance(backbone, dict):
        return backbone
    if isinstance(backbone, str):
        return {"name": backbone}
    return {}


def _text(value: Any) -> str | None:
    """A recorded string attribute, or None when absent or empty."""
    return str(value) if value else None


@dataclass(frozen=True)
class StoreAttrs:
    """A store's attributes, typed: what extraction recorded about how the features were made.

    ``StoreAttrs.of`` reads a FeatureStore, or the copy of its attributes an index sidecar or a
    training run keeps; an attribute the source does not record is None (imported features
    record few). ``backbone_name`` is the ``--backbone`` the store was extracted with,
    ``spec_name`` the name in the backbone spec (older stores record only one of them).

    >>> a = StoreAttrs.of({"backbone": {"name": "tiny", "family": "tiny"}, "backbone_name": "tiny",
    ...                    "view": {"name": "eval15", "clips": 15}, "checkpoint_sha256": "ab12", "dataset": "ucf101"})
    >>> a.view_name, a.spec_name, a.checkpoint_sha256, a.dataset, a.checkpoint
    ('eval15', 'tiny', 'ab12', 'ucf101', None)
    >>> StoreAttrs.of({}).backbone, StoreAttrs.of({}).view_name, StoreAttrs.of({"view": "train16"}).view_name
    ({}, None, 'train16')
    """

    backbone: dict[str, Any] = field(default_factory=dict)  # the backbone spec (name, family, frames, ...)
    backbone_name: str | None = None
    backbone_options: dict[str, Any] | None = None  # e.g. {"encoder": "momentum"}
    view: dict[str, Any] | str | None = None  # {name, clips, frames, stride, crop_size}; older stores: the name
    checkpoint: str | None = None  # the checkpoint's absolute path on the extracting machine
    checkpoint_sha256: str | None = None
    dataset: str | None = None
    dataset_root: str | None = None
    seed: int | None = None  # of the clip sampling
    decoder: str | None = None
    precision: str | None = None  # as asked for (auto | bf16 | fp32)
    precision_resolved: str | None = None  # what it resolved to on the extracting machine
    precision_reason: str | None = None
    toolkit_version: str | None = None  # of the scale that made the store

    @classmethod
    def of(cls, source: Any) -> "StoreAttrs":
        """The attributes of a FeatureStore (anything with ``.attrs``) or of an attributes dict (else none)."""
        if isinstance(source, StoreAttrs):
            return source
        attrs = source if isinstance(source, dict) else dict(getattr(source, "attrs", None) or {})
        view = attrs.get("view")
        return cls(
            backbone=backbone_of(attrs),
            backbone_name=_text(attrs.get("backbone_name")),
            backbone_options=attrs.get("backbone_options"),
            view=view if isinstance(view, (dict, str)) and view else None,
            checkpoint=_text(attrs.get("checkpoint")),
            checkpoint_sha256=_text(attrs.get("checkpoint_sha256")),
            dataset=_text(attrs.get("dataset")),
            dataset_root=_text(attrs.get("dataset_root")),
            seed=attrs.get("seed"),
            decoder=_text(attrs.get("decoder")),
            precision=_text(attrs.get("precision")),
            precision_resolved=_text(attrs.get("precision_resolved")),
            precision_reason=attrs.get("precision_reason"),
            toolkit_version=_text(attrs.get("toolkit_version")),
        )

    @property
    def spec_name(self) -> str | None:
        """The backbone spec's name, or None when not recorded.

        >>> StoreAttrs.of({"backbone": {"name": "videomae-b"}}).spec_name, StoreAttrs.of({"backbone": ""}).spec_name
        ('videomae-b', None)
        """
        name = self.backbone.get("name")
        return str(name) if name else None

    @property
    def backbone_label(self) -> str | None:
        """The backbone as people named it: the --backbone of the extraction, else the spec's name.

        >>> StoreAttrs.of({"backbone": {"name": "svt"}, "backbone_name": "timm:vit_small"}).backbone_label
        'timm:vit_small'
        """
        return self.backbone_name or self.spec_name

    @property
    def view_name(self) -> str | None:
        """train16 or eval15 (or another view name), or None when not recorded."""
        if isinstance(self.view, dict):
            return self.view.get("name")
        return self.view

    def checkpoint_missing(self) -> bool:
        """The store records a checkpoint path that does not exist on this machine."""
        return self.checkpoint is not None and bool(self.checkpoint) and not Path(self.checkpoint).exists()

    @property
    def precision_text(self) -> str | None:
        """The precision the features were computed in, with its reason, e.g. "fp32 (no native bf16)".

        >>> StoreAttrs(precision="auto", precision_resolved="fp32", precision_reason="CPU").precision_text
        'fp32 (CPU)'
        """
        if self.precision_resolved:
            return f"{self.precision_resolved} ({self.precision_reason or ''})"
        return self.precision


def check_model_fits_store(model: str | Path | None, input_dim: int | None, trained_on: StoreAttrs,
                           store: "FeatureStore") -> None:
    """A clear error when a SCALE model cannot read `store`'s features: its config's `input_dim` is
    another feature dim, or `trained_on` (the attributes its run recorded of its training store)
    names another backbone than the store. What the model does not record is not checked."""
    named = f" {model}" if model else ""
    if input_dim is not None and input_dim != store.feature_dim:
        raise ScaleError(f"the SCALE model{named} expects {input_dim}-d clip features but the store {store.path} has "
                         f"{store.feature_dim}-d ones; use a store extracted with the backbone the model was trained on")
    trained, here = trained_on.spec_name, StoreAttrs.of(store).spec_name
    if trained and here and trained != here:
        raise ScaleError(f"the SCALE model{named} was trained on {trained!r} features but the store {store.path} "
                         f"holds {here!r} features; use a store extracted with the same backbone")
