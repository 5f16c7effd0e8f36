"""Checks every registered backbone family passes, parametrised over the registry so a new family is covered."""
from __future__ import annotations

import json

import pytest
import torch

from scale_toolkit.backbones import list_backbones, load_backbone
from scale_toolkit.errors import ScaleError


def _timm_importable() -> bool:
    try:
        import timm  # noqa: F401
    except Exception:  # timm imports torchvision, whose failures are not only ImportError
        return False
    return True


# `timm` is a family of names (timm:<model>); every other entry is a CLI name itself
def _cli_name(entry) -> str:
    return "timm:vit_tiny_patch16_224" if entry.name == "timm" else entry.name


ENTRIES = list_backbones()
CLI_NAMES = [pytest.param(_cli_name(e), id=e.name,
                          marks=pytest.mark.skipif(e.name == "timm" and not _timm_importable(),
                                                   reason="timm cannot import here (it needs a working torchvision)"))
             for e in ENTRIES]


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_spec_is_complete_and_fits_the_store_attributes(entry):
    spec = entry.spec
    assert spec.name == entry.name and spec.family
    assert spec.frames > 0 and spec.stride > 0 and spec.crop_size > 0
    assert len(spec.mean) == len(spec.std) == 3 and all(s > 0 for s in spec.std)
    assert spec.pooling and spec.checkpoint_formats and spec.weights_hint
    # timm's width is only known once the named model is built
    assert spec.feature_dim > 0 or entry.name == "timm"
    json.dumps(spec.to_dict())  # goes into the store attributes


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.needs_checkpoint], ids=lambda e: e.name)
def test_pretrained_family_without_checkpoint_says_where_weights_are(entry):
    with pytest.raises(ScaleError) as err:
        load_backbone(entry.name)
    message = str(err.value)
    assert "--checkpoint" in message and "--random-init" in message
    assert entry.spec.weights_hint in message


@pytest.mark.parametrize("name", CLI_NAMES)
def test_random_init_builds_a_frozen_module_of_the_spec_width(name):
    # built on the meta device: shapes are checked at full size without allocating the weights
    with torch.device("meta"):
        loaded = load_backbone(name, random_init=True)
        spec = loaded.spec
        features = loaded.module(torch.empty(1, 3, spec.frames, spec.crop_size, spec.crop_size))
    assert loaded.checkpoint_sha256 == "random-init"
    assert not loaded.module.training and not any(p.requires_grad for p in loaded.module.parameters())
    assert features.shape == (1, spec.feature_dim)


@pytest.mark.parametrize("name", CLI_NAMES)
def test_unrelated_checkpoint_is_refused_naming_its_keys(tmp_path, name):
    path = tmp_path / "unrelated.pt"
    torch.save({"unrelated_layer.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ScaleError, match="unrelated_layer.weight"):
        load_backbone(name, checkpoint=path)
