"""The registry: names, specs, the checkpoint rule, frozen modules, full-size architectures, bf16 tolerance."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from scale_toolkit.backbones import backbone_spec, list_backbones, load_backbone
from scale_toolkit.backbones.builder import checkpoint_sha256
from scale_toolkit.backbones.inference import BF16_RELATIVE_TOLERANCE, embed_clips
from scale_toolkit.backbones.slow_r50 import SlowR50
from scale_toolkit.backbones.timesformer import TimeSformer, TimeSformerConfig
from scale_toolkit.backbones.timm_frames import PerFrameImageModel
from scale_toolkit.backbones.video_vit import VideoViT, VideoViTConfig
from scale_toolkit.backbones.videomae import VIT_B, VIT_L
from scale_toolkit.errors import ScaleError
from tests.backbones.backbone_layouts import randomise_
from tests.backbones.test_backbone_timm_frames import StandInViT


def test_every_cli_name_is_registered_with_a_spec():
    names = {entry.name for entry in list_backbones()}
    assert {"cvmae", "videomae-b", "videomae-l", "videomae-b-ft", "rhobyol", "svt", "timm", "tiny"} <= names
    expected_dims = {"cvmae": 768, "videomae-b": 768, "videomae-l": 1024, "videomae-b-ft": 768, "rhobyol": 2048,
                     "svt": 768}
    for name, dim in expected_dims.items():
        spec = backbone_spec(name)
        assert spec.feature_dim == dim and spec.crop_size == 224 and spec.pooling and spec.checkpoint_formats
        assert spec.weights_hint
        json.dumps(spec.to_dict())  # goes into the store attributes
    assert backbone_spec("rhobyol").frames == 16 and backbone_spec("rhobyol").stride == 4
    assert backbone_spec("svt").frames == 8


def test_options_that_a_family_does_not_take_are_refused():
    with pytest.raises(ScaleError, match="takes no options"):
        load_backbone("videomae-b", random_init=True, encoder="momentum")
    with pytest.raises(ScaleError, match="does not take"):
        load_backbone("svt", random_init=True, encoder="online")


def test_random_init_is_reproducible_and_frozen():
    first = load_backbone("rhobyol", random_init=True)
    second = load_backbone("rhobyol", random_init=True)
    assert first.checkpoint_sha256 == "random-init"
    assert not first.module.training
    assert not any(p.requires_grad for p in first.module.parameters())
    x = torch.randn(1, 3, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(first.module(x), second.module(x))


def test_checkpoint_sha256_is_carried(tmp_path):
    path = tmp_path / "vit.pth"
    small = VideoViTConfig(width=64, depth=1, heads=4, mlp_hidden=128, frames=4, image_size=32)
    torch.save({"model": {f"encoder.{k}": v for k, v in VideoViT(small).state_dict().items()}}, path)
    from scale_toolkit.backbones.videomae import VARIANTS, load_video_vit

    cfg, spec = VARIANTS["cvmae"]
    loaded = load_video_vit("cvmae", replace(cfg, width=64, depth=1, heads=4, mlp_hidden=128), spec, path)
    assert loaded.checkpoint_sha256 == checkpoint_sha256(path)


def test_full_size_architectures_have_the_published_sizes():
    with torch.device("meta"):
        sizes = {
            "videomae-b": sum(p.numel() for p in VideoViT(VIT_B).parameters()),
            "videomae-l": sum(p.numel() for p in VideoViT(VIT_L).parameters()),
            "svt": sum(p.numel() for p in TimeSformer(TimeSformerConfig()).parameters()),
            "rhobyol": sum(p.numel() for p in SlowR50().parameters()),
        }
    # VideoMAE ViT-B 87M / ViT-L 305M, TimeSformer 121M, Slow-R50 32M with its 400-way fc (0.8M) removed
    assert 86e6 < sizes["videomae-b"] < 87e6
    assert 303e6 < sizes["videomae-l"] < 305e6
    assert 121e6 < sizes["svt"] < 122e6
    assert 31e6 < sizes["rhobyol"] < 32e6
    with torch.device("meta"):
        features = VideoViT(VIT_L)(torch.empty(1, 3, 16, 224, 224, device="meta"))
    assert features.shape == (1, 1024)


def relative_error(module, clips) -> float:
    fp32 = embed_clips(module, clips, batch_size=2, precision="fp32")
    bf16 = embed_clips(module, clips, batch_size=2, precision="bf16")
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    return ((bf16 - fp32).norm() / fp32.norm()).item()


@pytest.mark.parametrize("family", ["video_vit", "timesformer", "slow_r50", "timm_frames"])
def test_bf16_autocast_stays_within_documented_tolerance(family):
    torch.manual_seed(0)
    small_vit = VideoViTConfig(width=64, depth=2, heads=4, mlp_hidden=128, frames=4, image_size=32)
    module = {
        "video_vit": lambda: randomise_(VideoViT(small_vit)),
        "timesformer": lambda: randomise_(TimeSformer(TimeSformerConfig(width=64, depth=2, heads=4, mlp_hidden=128,
                                                                         frames=4, image_size=32))),
        "slow_r50": lambda: SlowR50().eval(),
        "timm_frames": lambda: PerFrameImageModel(StandInViT()).eval(),
    }[family]()
    clips = torch.randn(4, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    assert relative_error(module, clips) < BF16_RELATIVE_TOLERANCE


def test_embed_clips_checks_layout():
    with pytest.raises(ScaleError, match=r"\[N, 3, T, H, W\]"):
        embed_clips(load_backbone("tiny").module, torch.zeros(2, 8, 3, 64, 64))
    with pytest.raises(ScaleError, match="unknown precision"):
        embed_clips(load_backbone("tiny").module, torch.zeros(1, 3, 8, 64, 64), precision="fp8")
