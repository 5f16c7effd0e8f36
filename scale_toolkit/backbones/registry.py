"""`@register_backbone` families and `load_backbone`, the one way to get a backbone."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ScaleError
from .builder import RANDOM_INIT
from .spec import BackboneSpec, LoadedBackbone

# A factory builds the module for one family: (checkpoint, random_init, strict, options) -> LoadedBackbone
Factory = Callable[..., LoadedBackbone]


@dataclass(frozen=True)
class BackboneEntry:
    name: str
    factory: Factory
    spec: BackboneSpec  # the default spec, shown by `scale backbones`
    needs_checkpoint: bool = True


_REGISTRY: dict[str, BackboneEntry] = {}


def register_backbone(name: str, spec: BackboneSpec, needs_checkpoint: bool = True):
    """Register a backbone factory under a CLI name (e.g. `videomae-b`)."""

    def wrap(factory: Factory) -> Factory:
        _REGISTRY[name] = BackboneEntry(name, factory, spec, needs_checkpoint)
        return factory

    return wrap


def _ensure_families_imported() -> None:
    from . import families  # noqa: F401  (registers every family on import)


def list_backbones() -> list[BackboneEntry]:
    _ensure_families_imported()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def _resolve(name: str) -> tuple[BackboneEntry, dict]:
    _ensure_families_imported()
    options: dict = {}
    key = name
    if name.startswith("timm:"):
        key, options["model_name"] = "timm", name.split(":", 1)[1]
        if not options["model_name"]:
            raise ScaleError("backbone 'timm:' needs a model name, e.g. timm:vit_base_patch16_224")
    if key not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) + ", timm:<model_name>"
        raise ScaleError(f"unknown backbone '{name}'; known backbones: {known}")
    return _REGISTRY[key], options


def backbone_spec(name: str) -> BackboneSpec:
    """The default spec of a backbone name, without building it."""
    return _resolve(name)[0].spec


def load_backbone(
    name: str,
    checkpoint: str | Path | None = None,
    random_init: bool = False,
    strict: bool = True,
    **options,
) -> LoadedBackbone:
    """Build a frozen backbone by CLI name, loading `checkpoint` exactly.

    >>> bb = load_backbone("tiny")
    >>> bb.spec.feature_dim
    64
    """
    entry, name_options = _resolve(name)
    options = {**name_options, **{k: v for k, v in options.items() if v is not None}}
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if not checkpoint.exists():
            raise ScaleError(f"checkpoint not found: {checkpoint}")
        if random_init:
            raise ScaleError("give either --checkpoint or --random-init, not both")
    elif entry.needs_checkpoint and not random_init:
        hint = f" ({entry.spec.weights_hint})" if entry.spec.weights_hint else ""
        raise ScaleError(
            f"backbone '{name}' needs --checkpoint PATH{hint}; use --random-init to run with random weights"
        )
    # every family builds through builder.build_backbone, which seeds random weights (reproducible --random-init)
    loaded = entry.factory(checkpoint=checkpoint, random_init=random_init, strict=strict, **options)
    if random_init:
        loaded.checkpoint_sha256 = RANDOM_INIT
    loaded.module.eval()
    for p in loaded.module.parameters():
        p.requires_grad_(False)
    return loaded
