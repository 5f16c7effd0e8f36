"""VideoMAE / CrossVideoMAE: every public layout loads and matches Hugging Face's VideoMAEModel numerically."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file, save_file

from scale_toolkit.backbones import load_backbone
from scale_toolkit.backbones.video_vit import VideoViT, VideoViTConfig, sincos_table
from scale_toolkit.backbones.videomae import VARIANTS, load_video_vit
from scale_toolkit.errors import ScaleError
from tests.backbones.backbone_layouts import (
    hf_small_config,
    import_hf_videomae,
    mae_st_pretrain_checkpoint,
    original_finetune_checkpoint,
    original_pretrain_checkpoint,
    randomise_,
)

try:
    VideoMAEConfig, VideoMAEModel, VideoMAEForPreTraining, VideoMAEForVideoClassification = import_hf_videomae()
    HF_IMPORT_ERROR = None
except Exception as err:  # transformers is a test dependency; without it only the parity tests skip
    HF_IMPORT_ERROR = f"{type(err).__name__}: {err}"
needs_hf = pytest.mark.skipif(HF_IMPORT_ERROR is not None, reason=f"transformers unusable: {HF_IMPORT_ERROR}")

ATOL = 2e-5
# the small architecture of hf_small_config(), as scale names it, for the single-file layouts
SMALL = VideoViTConfig(width=64, depth=2, heads=4, mlp_hidden=128, frames=4, image_size=32)


def clips(batch: int = 2, frames: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def hf_features(model, x: torch.Tensor) -> torch.Tensor:
    """The clip feature the authors intend, computed by Hugging Face: HF takes [B, T, C, H, W]."""
    with torch.no_grad():
        return model(pixel_values=x.permute(0, 2, 1, 3, 4)).last_hidden_state.mean(dim=1)


def scale_features(loaded, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return loaded.module(x)


@pytest.fixture(scope="module")
def hf_pretrained():
    torch.manual_seed(0)
    return randomise_(VideoMAEModel(hf_small_config()), seed=1)


@needs_hf
def test_hf_directory_matches_reference(tmp_path, hf_pretrained):
    hf_pretrained.save_pretrained(tmp_path)
    loaded = load_backbone("videomae-b", checkpoint=tmp_path)
    x = clips()
    torch.testing.assert_close(scale_features(loaded, x), hf_features(hf_pretrained, x), atol=ATOL, rtol=1e-4)
    spec = loaded.spec
    assert (spec.feature_dim, spec.frames, spec.crop_size) == (64, 4, 32)  # from config.json, not the variant
    assert spec.options["format"] == "huggingface"
    assert spec.options["architecture"]["norm_eps"] == 1e-6
    assert len(loaded.checkpoint_sha256) == 64


@needs_hf
def test_hf_pretraining_directory_with_prefix_and_decoder(tmp_path):
    torch.manual_seed(0)
    pretraining = randomise_(VideoMAEForPreTraining(hf_small_config(layer_norm_eps=1e-12)), seed=2)
    pretraining.save_pretrained(tmp_path)
    assert any(k.startswith("decoder.") for k in load_file(tmp_path / "model.safetensors"))
    loaded = load_backbone("cvmae", checkpoint=tmp_path)
    x = clips(seed=3)
    torch.testing.assert_close(scale_features(loaded, x), hf_features(pretraining.videomae, x), atol=ATOL, rtol=1e-4)
    assert loaded.spec.options["architecture"]["norm_eps"] == 1e-12  # HF's default eps follows config.json


@needs_hf
def test_hf_legacy_q_bias_key_names(tmp_path, hf_pretrained):
    """Hub checkpoints published before transformers 5 name the biases attention.attention.q_bias / v_bias."""
    hf_pretrained.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    legacy = {k.replace("attention.attention.query.bias", "attention.attention.q_bias")
               .replace("attention.attention.value.bias", "attention.attention.v_bias"): v for k, v in state.items()}
    assert any("q_bias" in k for k in legacy)
    (tmp_path / "model.safetensors").unlink()
    torch.save(legacy, tmp_path / "pytorch_model.bin")
    loaded = load_backbone("videomae-b", checkpoint=tmp_path)
    x = clips(seed=4)
    torch.testing.assert_close(scale_features(loaded, x), hf_features(hf_pretrained, x), atol=ATOL, rtol=1e-4)


@needs_hf
def test_hf_classification_directory_pools_then_fc_norm(tmp_path):
    torch.manual_seed(0)
    classifier = randomise_(VideoMAEForVideoClassification(hf_small_config(use_mean_pooling=True, num_labels=5)), 3)
    classifier.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    loaded = load_backbone("videomae-b-ft", checkpoint=tmp_path)
    x = clips(seed=5)
    with torch.no_grad():
        tokens = classifier.videomae(pixel_values=x.permute(0, 2, 1, 3, 4)).last_hidden_state
        expected = classifier.fc_norm(tokens.mean(dim=1))
    torch.testing.assert_close(scale_features(loaded, x), expected, atol=ATOL, rtol=1e-4)
    assert loaded.spec.pooling == "mean of tokens, then fc_norm"
    assert loaded.spec.mean == (0.5, 0.5, 0.5)  # preprocessor_config.json wins over the variant's default


@needs_hf
def test_original_pretrain_layout_matches_reference(tmp_path, hf_pretrained):
    path = tmp_path / "checkpoint-1599.pth"
    torch.save(original_pretrain_checkpoint(hf_pretrained.state_dict()), path)
    cfg, spec = VARIANTS["videomae-b"]
    loaded = load_video_vit("videomae-b", replace(cfg, **vars_of(SMALL)), spec, path)
    x = clips(seed=6)
    torch.testing.assert_close(scale_features(loaded, x), hf_features(hf_pretrained, x), atol=ATOL, rtol=1e-4)
    assert loaded.spec.options["format"] == "videomae-pretrain"


@needs_hf
def test_original_finetune_layout_matches_reference(tmp_path):
    torch.manual_seed(0)
    classifier = randomise_(VideoMAEForVideoClassification(hf_small_config(use_mean_pooling=True, num_labels=5)), 4)
    path = tmp_path / "vit_b_k400_ft.pth"
    torch.save(original_finetune_checkpoint(classifier.state_dict()), path)
    cfg, spec = VARIANTS["videomae-b-ft"]
    loaded = load_video_vit("videomae-b-ft", replace(cfg, **vars_of(SMALL)), spec, path)
    x = clips(seed=7)
    with torch.no_grad():
        tokens = classifier.videomae(pixel_values=x.permute(0, 2, 1, 3, 4)).last_hidden_state
        expected = classifier.fc_norm(tokens.mean(dim=1))  # HF fc_norm eps 1e-5 vs the original 1e-6
    torch.testing.assert_close(scale_features(loaded, x), expected, atol=1e-4, rtol=1e-4)


@needs_hf
def test_mae_st_layout_matches_reference(tmp_path, hf_pretrained):
    """An MAE-ST encoder whose learned table equals VideoMAE's sin-cos one computes VideoMAE's feature."""
    path = tmp_path / "mae_st_pretrain.pth"
    torch.save(mae_st_pretrain_checkpoint(hf_pretrained.state_dict(), sincos_table(8, 64)), path)
    cfg, spec = VARIANTS["cvmae"]
    loaded = load_video_vit("cvmae", replace(cfg, **vars_of(SMALL)), spec, path)
    x = clips(seed=8)
    torch.testing.assert_close(scale_features(loaded, x), hf_features(hf_pretrained, x), atol=ATOL, rtol=1e-4)
    arch = loaded.spec.options["architecture"]
    assert (loaded.spec.options["format"], arch["qkv_bias"], arch["position"]) == ("mae-st-pretrain", "qkv", "learned")


@pytest.mark.slow
@needs_hf
def test_full_size_original_layout_through_registry(tmp_path):
    """videomae-b with a full-size checkpoint in the original layout, at the native 16x224 input."""
    torch.manual_seed(0)
    reference = randomise_(VideoMAEModel(VideoMAEConfig(use_mean_pooling=False, layer_norm_eps=1e-6)), seed=5)
    path = tmp_path / "checkpoint.pth"
    torch.save(original_pretrain_checkpoint(reference.state_dict()), path)
    loaded = load_backbone("videomae-b", checkpoint=path)
    x = clips(batch=1, frames=16, size=224, seed=9)
    torch.testing.assert_close(scale_features(loaded, x), hf_features(reference, x), atol=1e-4, rtol=1e-4)


def vars_of(cfg: VideoViTConfig) -> dict:
    return {k: getattr(cfg, k) for k in ("width", "depth", "heads", "mlp_hidden", "frames", "image_size")}


# ------------------------------------------------------------- layouts without a reference implementation


def mae_st_separable_state(finetuned: bool, seed: int = 0) -> dict:
    """mae_st with --sep_pos_embed --cls_embed: pos_embed_spatial/temporal/class and a cls_token."""
    gen = torch.Generator().manual_seed(seed)
    width = 64
    state = {"cls_token": torch.randn(1, 1, width, generator=gen),
             "pos_embed_spatial": torch.randn(1, 4, width, generator=gen),
             "pos_embed_temporal": torch.randn(1, 2, width, generator=gen),
             "pos_embed_class": torch.randn(1, 1, width, generator=gen),
             "patch_embed.proj.weight": 0.05 * torch.randn(width, 3, 2, 16, 16, generator=gen),
             "patch_embed.proj.bias": torch.zeros(width),
             "norm.weight": torch.ones(width), "norm.bias": torch.zeros(width)}
    for i in range(2):
        p = f"blocks.{i}."
        for name, shape in (("attn.q", (width, width)), ("attn.k", (width, width)), ("attn.v", (width, width)),
                            ("attn.proj", (width, width)), ("mlp.fc1", (128, width)), ("mlp.fc2", (width, 128))):
            state[p + name + ".weight"] = 0.05 * torch.randn(shape, generator=gen)
            state[p + name + ".bias"] = torch.zeros(shape[0])
        for name in ("norm1", "norm2"):
            state[p + name + ".weight"], state[p + name + ".bias"] = torch.ones(width), torch.zeros(width)
    if finetuned:
        state["head.weight"], state["head.bias"] = torch.randn(400, width), torch.zeros(400)
    else:
        state["decoder_embed.weight"], state["mask_token"] = torch.randn(32, width), torch.zeros(1, 1, 32)
    return state


@pytest.mark.parametrize("finetuned", [False, True])
def test_mae_st_separable_positions_and_cls(tmp_path, finetuned):
    path = tmp_path / "mae_st.pth"
    torch.save({"model": mae_st_separable_state(finetuned)}, path)
    cfg, spec = VARIANTS["cvmae"]
    loaded = load_video_vit("cvmae", replace(cfg, **vars_of(SMALL)), spec, path)
    arch = loaded.spec.options["architecture"]
    assert arch["cls_token"] and arch["position"] == "learned_separable"
    assert arch["pooling"] == ("mean_fc_norm" if finetuned else "norm_mean")  # mae_st models_vit pools then norms
    with torch.no_grad():
        features = loaded.module(clips())
        longer = loaded.module(clips(frames=8, size=48))  # separable tables resampled for another grid
    assert features.shape == longer.shape == (2, 64)
    assert torch.isfinite(longer).all()


def test_cls_token_is_left_out_of_the_mean():
    cfg = replace(SMALL, cls_token=True, position="learned", qkv_bias="qkv")
    model = VideoViT(cfg).eval()
    x = clips()
    with torch.no_grad():
        tokens = model.norm(model.forward_tokens(x))
        torch.testing.assert_close(model(x), tokens[:, 1:].mean(dim=1))


def test_sincos_table_matches_videomae_formula():
    table = sincos_table(5, 6)[0].double()
    pos, j = 3, 4
    angle = pos / 10000 ** (2 * (j // 2) / 6)
    assert table.shape == (5, 6)
    assert abs(table[pos, j].item() - torch.sin(torch.tensor(angle, dtype=torch.float64)).item()) < 1e-6
    assert abs(table[pos, j + 1].item() - torch.cos(torch.tensor(angle, dtype=torch.float64)).item()) < 1e-6


def test_other_input_size_interpolates_the_position_table():
    model = VideoViT(SMALL).eval()
    native = model._patch_positions(SMALL.grid)
    assert torch.equal(native, model.sincos)  # native grid: the table itself, never resampled
    bigger = model._patch_positions((4, 3, 3))
    assert bigger.shape == (1, 36, 64)
    with torch.no_grad():
        assert model(clips(frames=8, size=48)).shape == (2, 64)


# ------------------------------------------------------------- wrong checkpoints fail clearly


def test_finetuned_checkpoint_for_pretrained_variant_names_keys_and_suggests_fix(tmp_path):
    model = VideoViT(replace(SMALL, pooling="mean_fc_norm"))
    path = tmp_path / "ft.pth"
    torch.save({"module": {**model.state_dict(), "head.weight": torch.zeros(400, 64)}}, path)
    cfg, spec = VARIANTS["videomae-b"]
    with pytest.raises(ScaleError) as err:
        load_video_vit("videomae-b", replace(cfg, **vars_of(SMALL)), spec, path)
    message = str(err.value)
    assert "missing keys: norm.bias, norm.weight" in message
    assert "unexpected keys: fc_norm.bias, fc_norm.weight" in message
    assert "videomae-b-ft" in message


def test_small_checkpoint_for_full_variant_names_wrong_shapes(tmp_path):
    path = tmp_path / "small.pth"
    torch.save({"module": VideoViT(replace(SMALL, pooling="mean_fc_norm")).state_dict()}, path)
    with pytest.raises(ScaleError) as err:
        load_backbone("videomae-b-ft", checkpoint=path)
    message = str(err.value)
    assert "wrong shapes (file vs model)" in message and "blocks.0.attn.v_bias (64,) vs (768,)" in message
    assert "missing keys: blocks.10." in message  # depth 2 vs 12


def test_missing_key_is_named_and_strict_false_returns_it(tmp_path):
    model = VideoViT(SMALL)
    state = model.state_dict()
    del state["blocks.1.mlp.fc2.bias"]
    path = tmp_path / "partial.pth"
    torch.save({"model": {f"encoder.{k}": v for k, v in state.items()}}, path)
    cfg, spec = VARIANTS["videomae-b"]
    with pytest.raises(ScaleError, match=r"missing keys: blocks\.1\.mlp\.fc2\.bias"):
        load_video_vit("videomae-b", replace(cfg, **vars_of(SMALL)), spec, path)
    loaded = load_video_vit("videomae-b", replace(cfg, **vars_of(SMALL)), spec, path, strict=False)
    assert loaded.skipped_keys == ["blocks.1.mlp.fc2.bias"]


def test_unrelated_checkpoint_and_bare_hf_weights_file_fail_clearly(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(ScaleError, match="not a VideoMAE, MAE-ST or Hugging Face VideoMAE checkpoint"):
        load_backbone("videomae-b", checkpoint=path)
    hf_file = tmp_path / "model.safetensors"
    save_file({"videomae.embeddings.patch_embeddings.projection.weight": torch.zeros(4, 3, 2, 16, 16)}, hf_file)
    with pytest.raises(ScaleError, match="pass the directory that also holds its config.json"):
        load_backbone("videomae-b", checkpoint=hf_file)
    (tmp_path / "hfdir").mkdir()
    with pytest.raises(ScaleError, match="no model.safetensors"):
        load_backbone("videomae-b", checkpoint=tmp_path / "hfdir")


def test_learned_pos_embed_in_videomae_layout_is_refused(tmp_path):
    state = {f"encoder.{k}": v for k, v in VideoViT(SMALL).state_dict().items()}
    state["encoder.pos_embed"] = torch.randn(1, 8, 64)
    path = tmp_path / "learned.pth"
    torch.save({"model": state}, path)
    cfg, spec = VARIANTS["videomae-b"]
    with pytest.raises(ScaleError, match="not VideoMAE's fixed sin-cos table"):
        load_video_vit("videomae-b", replace(cfg, **vars_of(SMALL)), spec, path)
    state["encoder.pos_embed"] = sincos_table(8, 64)  # the fixed table some exports store: accepted
    torch.save({"model": state}, path)
    load_video_vit("videomae-b", replace(cfg, **vars_of(SMALL)), spec, path)
