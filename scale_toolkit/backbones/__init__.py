"""Frozen video backbones: a registry of families, each with its spec and checkpoint adapters."""
from .registry import backbone_spec, list_backbones, load_backbone, register_backbone
from .spec import BackboneSpec, LoadedBackbone

__all__ = ["BackboneSpec", "LoadedBackbone", "backbone_spec", "list_backbones", "load_backbone", "register_backbone"]
