"""SVT TimeSformer: the release layout loads, divided attention behaves as specified, wrong files fail."""
from __future__ import annotations

import pytest
import torch

from scale_toolkit.backbones import load_backbone
from scale_toolkit.backbones.checkpoint import load_state_strict
from scale_toolkit.backbones.timesformer import TimeSformer, TimeSformerConfig, svt_encoder_state
from scale_toolkit.errors import ScaleError
from tests.backbones.backbone_layouts import svt_release_checkpoint

SMALL = TimeSformerConfig(width=64, depth=2, heads=4, mlp_hidden=256, frames=8, image_size=32)


def small_model() -> TimeSformer:
    model = TimeSformer(SMALL)
    release = svt_release_checkpoint(width=64, depth=2, frames=8, grid=2, seed=1)
    load_state_strict(model, svt_encoder_state(release))
    return model.eval()


def clips(frames: int = 8, size: int = 32) -> torch.Tensor:
    return torch.randn(2, 3, frames, size, size, generator=torch.Generator().manual_seed(0))


def test_release_layout_maps_every_key():
    release = svt_release_checkpoint(width=64, depth=2, frames=8, grid=2)
    state = svt_encoder_state(release)
    assert not any(k.startswith(("head.", "backbone.")) for k in state)
    assert set(state) == set(TimeSformer(SMALL).state_dict())


def test_dino_style_teacher_student_file_uses_teacher():
    release = svt_release_checkpoint(width=64, depth=2, frames=8, grid=2, seed=5)
    other = svt_release_checkpoint(width=64, depth=2, frames=8, grid=2, seed=6)
    state = svt_encoder_state({"teacher": release, "student": other, "epoch": 20})
    assert torch.equal(state["cls_token"], release["backbone.cls_token"])


def test_feature_is_normed_cls_and_depends_on_frame_order():
    model = small_model()
    x = clips()
    with torch.no_grad():
        features = model(x)
        reversed_time = model(x.flip(2))
    assert features.shape == (2, 64)
    # the time embedding makes the feature sensitive to the order of frames
    assert not torch.allclose(features, reversed_time, atol=1e-4)


def test_temporal_attention_mixes_only_across_time():
    """With one frame, temporal attention over a single token is the identity on values: output = proj(v)."""
    model = small_model()
    block = model.blocks[0]
    tokens = torch.randn(3, 1, 64)
    with torch.no_grad():
        out = block.temporal_attn(tokens)
        qkv = torch.nn.functional.linear(tokens, block.temporal_attn.qkv.weight, block.temporal_attn.qkv.bias)
        expected = block.temporal_attn.proj(qkv[..., 128:])
    torch.testing.assert_close(out, expected)


def test_time_embedding_interpolated_for_16_frames_and_other_crops():
    model = small_model()
    with torch.no_grad():
        assert model(clips(frames=16)).shape == (2, 64)
        assert model(clips(frames=8, size=48)).shape == (2, 64)
    resized = model._time_positions(16)
    torch.testing.assert_close(resized[:, ::2], model.time_embed)  # nearest: each frame's embedding twice


@pytest.mark.slow
def test_full_size_release_file_through_registry(tmp_path):
    path = tmp_path / "kinetics400_vitb_ssl.pth"
    torch.save(svt_release_checkpoint(dtype=torch.float16), path)  # half precision keeps the file small
    loaded = load_backbone("svt", checkpoint=path, variant="16x4")
    assert (loaded.spec.frames, loaded.spec.stride, loaded.spec.feature_dim) == (16, 4, 768)
    with torch.no_grad():
        assert loaded.module(torch.randn(1, 3, 16, 64, 64)).shape == (1, 768)


def test_wrong_files_fail_naming_keys(tmp_path):
    release = svt_release_checkpoint(width=64, depth=2, frames=8, grid=2)
    del release["backbone.blocks.1.temporal_fc.bias"]
    with pytest.raises(ScaleError, match=r"missing keys: blocks\.1\.temporal_fc\.bias"):
        load_state_strict(TimeSformer(SMALL), svt_encoder_state(release))
    small = tmp_path / "small.pth"
    torch.save(svt_release_checkpoint(width=64, depth=2, frames=8, grid=2), small)
    with pytest.raises(ScaleError, match=r"wrong shapes \(file vs model\)"):
        load_backbone("svt", checkpoint=small)
    unrelated = tmp_path / "r50.pth"
    torch.save({"model_state": {"s1.pathway0_stem.conv.weight": torch.zeros(1)}}, unrelated)
    with pytest.raises(ScaleError, match="not an SVT/TimeSformer checkpoint"):
        load_backbone("svt", checkpoint=unrelated)
