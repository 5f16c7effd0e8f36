"""Reading a store's attributes (or the copy an index sidecar or a training run records of them) the same
way everywhere: ``StoreAttrs.of(store)``, or ``backbone_of`` / ``backbone_name`` for the backbone alone."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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


def backbone_name(attrs: dict) -> str | None:
    """The backbone's spec name, or None when the attributes do not record one.

    >>> backbone_name({"backbone": {"name": "videomae-b"}}), backbone_name({"backbone": ""})
    ('videomae-b', None)
    """
    name = backbone_of(attrs).get("name")
    return str(name) if name else None


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
        """The attributes of a FeatureStore (anything with ``.attrs``) or of an attributes dict."""
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
    def view_name(self) -> str | None:
        """train16 or eval15 (or another view name), or None when not recorded."""
        if isinstance(self.view, dict):
            return self.view.get("name")
        return self.view

    def checkpoint_missing(self) -> bool:
        """The store records a checkpoint path that does not exist on this machine."""
        return bool(self.checkpoint) and not Path(self.checkpoint).exists()

    @property
    def precision_text(self) -> str | None:
        """The precision the features were computed in, with its reason, e.g. "fp32 (no native bf16)".

        >>> StoreAttrs(precision="auto", precision_resolved="fp32", precision_reason="CPU").precision_text
        'fp32 (CPU)'
        """
        if self.precision_resolved:
            return f"{self.precision_resolved} ({self.precision_reason or ''})"
        return self.precision
