"""Reading a store's attributes (or the copy a training run records of them) the same way everywhere."""
from __future__ import annotations


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
