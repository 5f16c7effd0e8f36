"""The one loading path every family goes through: build → read checkpoint → family filter → strict load → sha.

A family supplies only its architecture (a `build` callable) and its checkpoint filter (raw checkpoint →
state dict in the architecture's parameter names); everything else — seeding, reading files safely,
the strict key check and the fingerprint — happens here, identically for every family.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from ..errors import ScaleError
from ..files import file_sha256
from ..seeding import seeded
from .checkpoint import load_state_strict, read_checkpoint
from .spec import BackboneSpec, LoadedBackbone

RANDOM_INIT = "random-init"  # the checkpoint_sha256 of a backbone built without weights
RANDOM_INIT_SEED = 0  # so a --random-init store can be resumed and queried with identical weights


def checkpoint_sha256(path: str | Path) -> str:
    """sha256 of a checkpoint file, or of a Hugging Face directory's files in name order."""
    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f.relative_to(path).as_posix().encode())
            digest.update(file_sha256(f).encode())
        return digest.hexdigest()
    return file_sha256(path)


@dataclass(frozen=True)
class FamilyWeights:
    """A checkpoint after the family filter: its state in the architecture's names, and what the file implies."""

    state: dict
    what: str  # names the file in errors, e.g. "SVT checkpoint kinetics400_vitb_ssl.pth"
    build: Callable[[], nn.Module] | None = None  # an architecture the file defines itself (Hugging Face dirs)
    spec: BackboneSpec | None = None  # the spec that architecture implies
    mismatch_hint: str = ""  # appended to a key-mismatch error, e.g. which variant name fits the file


CheckpointFilter = Callable[[Path], FamilyWeights]


def single_file_filter(keep: Callable[[dict], dict], what: str) -> CheckpointFilter:
    """The usual filter: read one checkpoint file safely, keep the family's keys in its names."""
    return lambda path: FamilyWeights(keep(read_checkpoint(path)), f"{what} {path.name}")


def build_backbone(
    spec: BackboneSpec,
    build: Callable[[], nn.Module],
    checkpoint: str | Path | None,
    checkpoint_filter: CheckpointFilter,
    strict: bool = True,
    weights_of: Callable[[nn.Module], nn.Module] | None = None,
) -> LoadedBackbone:
    """Build a family's module (seeded) and, given a checkpoint, load it key-for-key and fingerprint it.

    `weights_of` picks the submodule the checkpoint describes when the module wraps it (timm's per-frame model).

    >>> from scale_toolkit.backbones.tiny import TINY_SPEC, TinyVideoNet
    >>> built = build_backbone(TINY_SPEC, TinyVideoNet, None, single_file_filter(dict, "state dict"))
    >>> built.checkpoint_sha256
    'random-init'
    """
    if checkpoint is None:
        return LoadedBackbone(seeded(build, RANDOM_INIT_SEED), spec, RANDOM_INIT)
    path = Path(checkpoint)
    weights = checkpoint_filter(path)
    module = seeded(weights.build or build, RANDOM_INIT_SEED)
    target = weights_of(module) if weights_of else module
    try:
        skipped = load_state_strict(target, weights.state, strict=strict, what=weights.what)
    except ScaleError as err:
        if not weights.mismatch_hint:
            raise
        raise ScaleError(f"{err}{weights.mismatch_hint}") from None
    return LoadedBackbone(module, weights.spec or spec, checkpoint_sha256(path), skipped)
