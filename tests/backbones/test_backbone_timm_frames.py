"""timm:<name>: per-frame pooling (tested with a stand-in of timm's interface) and timm's availability."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from scale_toolkit.backbones import load_backbone
from scale_toolkit.backbones.timm_frames import PerFrameImageModel, image_model_state, import_timm
from scale_toolkit.errors import ScaleError


class StandInViT(nn.Module):
    """timm's interface: forward_features -> [N, prefix + patches, D], num_prefix_tokens, num_features."""

    num_prefix_tokens = 1
    num_features = 8

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, 8, kernel_size=4, stride=4)
        self.cls_token = nn.Parameter(torch.full((1, 1, 8), 100.0))  # large, so leaking it into the mean shows

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        patches = self.proj(images).flatten(2).transpose(1, 2)
        return torch.cat([self.cls_token.expand(images.shape[0], -1, -1), patches], dim=1)


class StandInCNN(nn.Module):
    num_features = 8

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=4, stride=4)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(images)  # NCHW map


def test_patch_tokens_are_averaged_per_frame_then_over_time():
    model = StandInViT()
    wrapped = PerFrameImageModel(model)
    x = torch.randn(2, 3, 5, 16, 16)
    with torch.no_grad():
        features = wrapped(x)
        expected = torch.stack([
            torch.stack([model.forward_features(x[b, :, t][None])[0, 1:].mean(0) for t in range(5)]).mean(0)
            for b in range(2)
        ])
    assert features.shape == (2, 8)
    torch.testing.assert_close(features, expected)
    assert features.abs().max() < 50  # the CLS token (100) is not part of the mean


def test_feature_maps_are_pooled_over_space_and_time():
    model = StandInCNN()
    x = torch.randn(2, 3, 3, 16, 16)
    with torch.no_grad():
        expected = model.conv(x.transpose(1, 2).reshape(6, 3, 16, 16)).mean(dim=(2, 3)).reshape(2, 3, 8).mean(1)
        torch.testing.assert_close(PerFrameImageModel(model)(x), expected)


def test_mae_and_vicmae_pretraining_keys_are_dropped():
    raw = {"model": {"cls_token": torch.zeros(1), "blocks.0.attn.qkv.weight": torch.zeros(1),
                     "decoder_embed.weight": torch.zeros(1), "decoder_blocks.0.norm1.weight": torch.zeros(1),
                     "mask_token": torch.zeros(1), "projector.0.weight": torch.zeros(1), "head.weight": torch.zeros(1)},
           "optimizer": {}, "epoch": 3}
    assert set(image_model_state(raw)) == {"cls_token", "blocks.0.attn.qkv.weight"}


def _timm_importable() -> bool:
    try:
        import_timm()
    except ScaleError:
        return False
    return True


@pytest.mark.skipif(_timm_importable(), reason="timm imports here; the unavailable path cannot be exercised")
def test_unusable_timm_is_one_clear_error():
    with pytest.raises(ScaleError, match="timm needs torchvision"):
        load_backbone("timm:vit_tiny_patch16_224", random_init=True)


@pytest.mark.skipif(not _timm_importable(), reason="timm cannot import here (it needs a working torchvision)")
def test_real_timm_vit_per_frame(tmp_path):
    loaded = load_backbone("timm:vit_tiny_patch16_224", random_init=True)
    assert loaded.spec.feature_dim == 192 and loaded.spec.crop_size == 224
    path = tmp_path / "vit.pth"
    torch.save({"model": loaded.module.image_model.state_dict()}, path)
    reloaded = load_backbone("timm:vit_tiny_patch16_224", checkpoint=path)
    x = torch.randn(1, 3, 2, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.module(x), loaded.module(x))
