"""ρBYOL Slow-R50: PySlowFast checkpoints load strictly, by encoder; wrong ones fail naming the keys."""
from __future__ import annotations

import pytest
import torch

from scale_toolkit.backbones import load_backbone
from scale_toolkit.backbones.slow_r50 import SlowR50
from scale_toolkit.errors import ScaleError
from tests.backbones.backbone_layouts import rho_byol_checkpoint, slowfast_slow_r50_encoder


@pytest.fixture(scope="module")
def byol_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("rhobyol") / "BYOL_SlowR50_16x4_T4_epoch_00200.pyth"
    torch.save(rho_byol_checkpoint(online_seed=1, momentum_seed=2), path)
    return path


def small_clips(frames: int = 4) -> torch.Tensor:
    return torch.randn(2, 3, frames, 32, 32, generator=torch.Generator().manual_seed(0))


def test_momentum_encoder_is_the_default_and_loads_every_key(byol_file):
    loaded = load_backbone("rhobyol", checkpoint=byol_file)
    expected = slowfast_slow_r50_encoder(seed=2)  # the backbone_hist.* weights
    own = loaded.module.state_dict()
    assert set(own) == set(expected)
    for key, value in expected.items():
        assert torch.equal(own[key], value), key
    assert loaded.spec.options == {"variant": "16x4", "encoder": "momentum"}
    assert (loaded.spec.frames, loaded.spec.stride, loaded.spec.feature_dim) == (16, 4, 2048)
    with torch.no_grad():
        assert loaded.module(small_clips()).shape == (2, 2048)


def test_online_encoder_and_8x8_variant(byol_file):
    online = load_backbone("rhobyol", checkpoint=byol_file, encoder="online", variant="8x8")
    assert torch.equal(online.module.state_dict()["s5.pathway0_res2.branch2.c.weight"],
                       slowfast_slow_r50_encoder(seed=1)["s5.pathway0_res2.branch2.c.weight"])
    assert (online.spec.frames, online.spec.stride) == (8, 8)
    momentum = load_backbone("rhobyol", checkpoint=byol_file)
    x = small_clips(2)
    with torch.no_grad():
        assert not torch.allclose(online.module(x), momentum.module(x))


def test_feature_is_global_average_of_res5():
    model = SlowR50().eval()
    x = small_clips()
    with torch.no_grad():
        h = x
        for stage in (model.s1, model.s2, model.s3, model.s4, model.s5):
            h = stage(h)
        assert h.shape == (2, 2048, 4, 1, 1)  # no temporal downsampling in the slow pathway
        torch.testing.assert_close(model(x), h.mean(dim=(2, 3, 4)))


def test_temporal_kernels_follow_the_slow_arch():
    model = SlowR50()
    assert model.s1.pathway0_stem.conv.kernel_size == (1, 7, 7)
    for stage, t in (("s2", 1), ("s3", 1), ("s4", 3), ("s5", 3)):
        assert getattr(model, stage).pathway0_res0.branch2.a.kernel_size == (t, 1, 1)


def test_wrong_shape_and_missing_keys_are_named(tmp_path):
    state = {"backbone_hist." + k: v for k, v in slowfast_slow_r50_encoder(seed=3).items()}
    state["backbone_hist.s4.pathway0_res0.branch2.a.weight"] = torch.zeros(256, 512, 1, 1, 1)  # 3 -> 1 frames
    del state["backbone_hist.s5.pathway0_res2.branch2.c_bn.running_var"]
    path = tmp_path / "bad.pyth"
    torch.save({"model_state": state}, path)
    with pytest.raises(ScaleError) as err:
        load_backbone("rhobyol", checkpoint=path)
    message = str(err.value)
    assert "missing keys: s5.pathway0_res2.branch2.c_bn.running_var" in message
    assert "s4.pathway0_res0.branch2.a.weight (256, 512, 1, 1, 1) vs (256, 512, 3, 1, 1)" in message
    loose = load_backbone("rhobyol", checkpoint=path, strict=False)
    assert "s5.pathway0_res2.branch2.c_bn.running_var" in loose.skipped_keys
    assert "s4.pathway0_res0.branch2.a.weight" in loose.skipped_keys


def test_missing_encoder_and_unrelated_files_fail_clearly(tmp_path):
    online_only = tmp_path / "online.pyth"
    torch.save({"model_state": {"backbone." + k: v for k, v in slowfast_slow_r50_encoder(4).items()}}, online_only)
    with pytest.raises(ScaleError, match="no momentum encoder .*use --encoder online"):
        load_backbone("rhobyol", checkpoint=online_only)
    assert load_backbone("rhobyol", checkpoint=online_only, encoder="online").spec.options["encoder"] == "online"
    unrelated = tmp_path / "vit.pth"
    torch.save({"model": {"blocks.0.attn.qkv.weight": torch.zeros(3, 3)}}, unrelated)
    with pytest.raises(ScaleError, match=r"no Slow-R50 layers \(s1\.\* \.\. s5\.\*\)"):
        load_backbone("rhobyol", checkpoint=unrelated)
    with pytest.raises(ScaleError, match="unknown rhobyol variant"):
        load_backbone("rhobyol", random_init=True, variant="32x2")
    with pytest.raises(ScaleError, match="unknown encoder"):
        load_backbone("rhobyol", random_init=True, encoder="target")
