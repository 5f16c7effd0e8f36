"""Checkpoint adapters for VideoViT: recognise a public layout by its keys and map it onto VideoViT's names.

Layouts (all mapped onto `VideoViT`'s names):

- videomae-pretrain: MCG-NJU/VideoMAE `checkpoint.pth['model']`, keys `encoder.*` with `attn.q_bias`/`v_bias`;
  decoder, `encoder_to_decoder` and `mask_token` are dropped.
- videomae-finetune: `['module']` or `['model']`, unprefixed `blocks.*`, `fc_norm`; the classifier `head` is dropped.
- huggingface: a directory with config.json and model.safetensors / pytorch_model.bin (VideoMAEModel,
  VideoMAEForPreTraining or VideoMAEForVideoClassification); split q/k/v are fused, decoder/classifier dropped.
  The architecture follows config.json, whatever its size.
- mae-st: facebookresearch/mae_st (`blocks.*.attn.{q,k,v}`, learned `pos_embed` or separable
  `pos_embed_spatial/temporal/class`, optional `cls_token`); pretrain checkpoints pool the mean of the
  normed patch tokens, fine-tuned ones (with `head`) pool then norm, as mae_st's models_vit does.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import torch

from ..errors import ScaleError
from .checkpoint import preview_keys, read_checkpoint, strip_prefix, unwrap_state
from .video_vit import VideoViTConfig, sincos_table

FORMATS = (
    "videomae-pretrain (.pth ['model'], encoder.*)",
    "videomae-finetune (.pth ['module'|'model'], fc_norm)",
    "huggingface (dir: config.json + model.safetensors|pytorch_model.bin)",
    "mae-st (.pth ['model'|'model_state'], attn.q/k/v, pos_embed[_spatial|_temporal])",
)

# keys of the pretraining decoder / classifier that a feature extractor never uses
_VIDEOMAE_DROPPED = re.compile(r"^(decoder\.|encoder_to_decoder\.|mask_token$|head\.)")
_MAE_ST_DROPPED = re.compile(r"^(decoder_|mask_token$|head\.)")
_HF_DROPPED = re.compile(r"^(decoder\.|encoder_to_decoder\.|mask_token$|classifier\.|position_embeddings$)")

_HF_LAYER_RENAMES = {
    "attention.attention.q_bias": "attn.q_bias",
    "attention.attention.v_bias": "attn.v_bias",
    "attention.attention.query.bias": "attn.q_bias",
    "attention.attention.value.bias": "attn.v_bias",
    "attention.output.dense.weight": "attn.proj.weight",
    "attention.output.dense.bias": "attn.proj.bias",
    "layernorm_before.weight": "norm1.weight",
    "layernorm_before.bias": "norm1.bias",
    "layernorm_after.weight": "norm2.weight",
    "layernorm_after.bias": "norm2.bias",
    "intermediate.dense.weight": "mlp.fc1.weight",
    "intermediate.dense.bias": "mlp.fc1.bias",
    "output.dense.weight": "mlp.fc2.weight",
    "output.dense.bias": "mlp.fc2.bias",
}
_HF_TOP_RENAMES = {
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
    "fc_norm.weight": "fc_norm.weight",
    "fc_norm.bias": "fc_norm.bias",
}


def _fuse_qkv(state: dict, names: tuple[str, str, str], fused: str) -> None:
    """Replace three split projections (q, k, v) in `state` by one fused tensor, in place."""
    prefixes = {k[: -len(names[0])] for k in state if k.endswith(names[0])}
    for prefix in prefixes:
        parts = [prefix + n for n in names]
        missing = [p for p in parts if p not in state]
        if missing:
            raise ScaleError(f"checkpoint has {prefix + names[0]} but not {', '.join(missing)}; the file is incomplete")
        state[prefix + fused] = torch.cat([state.pop(p) for p in parts], dim=0)


# ---------------------------------------------------------------- Hugging Face directory


def _read_hf_weights(directory: Path) -> dict:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (directory / name).exists():
            return unwrap_state(read_checkpoint(directory / name))
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = directory / index_name
        if index.exists():
            state: dict = {}
            for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
                state.update(read_checkpoint(directory / shard))
            return state
    raise ScaleError(f"{directory} has no model.safetensors or pytorch_model.bin; download the full Hugging Face repo")


def hf_videomae_state(state: dict) -> dict:
    """Map Hugging Face VideoMAE keys (with or without the `videomae.` prefix) onto VideoViT names."""
    if any(k.startswith("videomae.") for k in state):
        kept = {k[len("videomae."):]: v for k, v in state.items() if k.startswith("videomae.")}
        kept.update({k: v for k, v in state.items() if not k.startswith("videomae.")})
        state = kept
    state = {k: v for k, v in state.items() if not _HF_DROPPED.match(k)}
    out: dict = {}
    for key, value in state.items():
        match = re.match(r"^encoder\.layer\.(\d+)\.(.+)$", key)
        if match:
            index, rest = match.groups()
            if rest in ("attention.attention.query.weight", "attention.attention.key.weight",
                        "attention.attention.value.weight"):
                out[f"blocks.{index}.{rest}"] = value  # fused below
            else:
                out[f"blocks.{index}.{_HF_LAYER_RENAMES.get(rest, rest)}"] = value
        else:
            out[_HF_TOP_RENAMES.get(key, key)] = value
    _fuse_qkv(out, ("attention.attention.query.weight", "attention.attention.key.weight",
                    "attention.attention.value.weight"), "attn.qkv.weight")
    return out


def _hf_architecture(directory: Path, state: dict) -> VideoViTConfig:
    config_path = directory / "config.json"
    if not config_path.exists():
        raise ScaleError(f"{directory} has no config.json; pass the whole Hugging Face model directory")
    config = json.loads(config_path.read_text())
    if config.get("model_type", "videomae") != "videomae":
        raise ScaleError(f"{directory} holds a '{config.get('model_type')}' model, not VideoMAE")
    if config.get("hidden_act", "gelu") != "gelu":
        raise ScaleError(f"hidden_act '{config['hidden_act']}' is not supported; VideoMAE uses 'gelu'")
    image_size, patch_size = config.get("image_size", 224), config.get("patch_size", 16)
    if isinstance(image_size, (list, tuple)):
        if len(set(image_size)) != 1:
            raise ScaleError(f"non-square image_size {image_size} in {config_path} is not supported")
        image_size = image_size[0]
    if isinstance(patch_size, (list, tuple)):
        patch_size = patch_size[0]
    has_bias = config.get("qkv_bias", config.get("qv_bias", True))
    if "fc_norm.weight" in state:
        pooling = "mean_fc_norm"
    elif "norm.weight" in state:
        pooling = "norm_mean"
    else:
        pooling = "mean"  # VideoMAEModel with use_mean_pooling=True has no final norm
    width = config.get("hidden_size", 768)
    return VideoViTConfig(
        width=width,
        depth=config.get("num_hidden_layers", 12),
        heads=config.get("num_attention_heads", 12),
        mlp_hidden=config.get("intermediate_size", 4 * width),
        patch_size=patch_size,
        tubelet=config.get("tubelet_size", 2),
        frames=config.get("num_frames", 16),
        image_size=image_size,
        qkv_bias="qv" if has_bias else "none",
        norm_eps=config.get("layer_norm_eps", 1e-12),
        fc_norm_eps=1e-5,  # HF builds fc_norm as nn.LayerNorm(hidden_size), torch's default eps
        pooling=pooling,
    )


def _hf_normalisation(directory: Path) -> dict:
    """mean/std from preprocessor_config.json when the directory has one."""
    path = directory / "preprocessor_config.json"
    if not path.exists():
        return {}
    config = json.loads(path.read_text())
    mean, std = config.get("image_mean"), config.get("image_std")
    if isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3:
        return {"mean": tuple(float(m) for m in mean), "std": tuple(float(s) for s in std)}
    return {}


# ---------------------------------------------------------------- single-file layouts


def _check_sincos(state: dict, cfg: VideoViTConfig) -> None:
    """A stored `pos_embed` must be the fixed table we rebuild; a learned one would be silently ignored."""
    stored = state.pop("pos_embed", None)
    if stored is None:
        return
    grid = cfg.grid
    expected = sincos_table(grid[0] * grid[1] * grid[2], cfg.width)
    if tuple(stored.shape) != tuple(expected.shape) or not torch.allclose(stored.float(), expected, atol=1e-4):
        raise ScaleError(
            f"checkpoint has a pos_embed {tuple(stored.shape)} that is not VideoMAE's fixed sin-cos table "
            f"{tuple(expected.shape)}; a learned position table needs the MAE-ST layout"
        )


def _videomae_file_state(state: dict, cfg: VideoViTConfig) -> tuple[str, dict, dict]:
    """(format, state in VideoViT names, architecture changes) for an original VideoMAE checkpoint."""
    if any(k.startswith("encoder.blocks.") or k.startswith("encoder.patch_embed.") for k in state):
        fmt = "videomae-pretrain"
        state = {k: v for k, v in state.items() if not _VIDEOMAE_DROPPED.match(k)}
        state = {k[len("encoder."):] if k.startswith("encoder.") else k: v for k, v in state.items()}
    else:
        fmt = "videomae-finetune"
        state = {k: v for k, v in state.items() if not _VIDEOMAE_DROPPED.match(k)}
    if "blocks.0.attn.q_bias" in state:
        qkv_bias = "qv"
    else:
        qkv_bias = "qkv" if "blocks.0.attn.qkv.bias" in state else "none"
    changes = {"qkv_bias": qkv_bias, "layer_scale": "blocks.0.gamma_1" in state}
    _check_sincos(state, replace(cfg, **changes))
    return fmt, state, changes


def _mae_st_file_state(state: dict) -> tuple[str, dict, dict]:
    pretrain = any(k.startswith("decoder_") for k in state) or "mask_token" in state
    finetuned = not pretrain and "head.weight" in state
    state = {k: v for k, v in state.items() if not _MAE_ST_DROPPED.match(k)}
    has_bias = "blocks.0.attn.q.bias" in state
    _fuse_qkv(state, ("attn.q.weight", "attn.k.weight", "attn.v.weight"), "attn.qkv.weight")
    if has_bias:
        _fuse_qkv(state, ("attn.q.bias", "attn.k.bias", "attn.v.bias"), "attn.qkv.bias")
    changes: dict = {
        "qkv_bias": "qkv" if has_bias else "none",
        "cls_token": "cls_token" in state,
        "position": "learned_separable" if "pos_embed_spatial" in state else "learned",
        "pooling": "norm_mean",
    }
    if finetuned:
        # mae_st's fine-tuned ViT averages the patch tokens and only then applies `norm`
        changes["pooling"] = "mean_fc_norm"
        for part in ("weight", "bias"):
            if f"norm.{part}" in state:
                state[f"fc_norm.{part}"] = state.pop(f"norm.{part}")
    return ("mae-st-finetune" if finetuned else "mae-st-pretrain"), state, changes


def read_video_vit_checkpoint(path: Path, cfg: VideoViTConfig) -> tuple[str, dict, VideoViTConfig, dict]:
    """Recognise a checkpoint's layout; return (format, state, architecture, spec changes)."""
    if path.is_dir():
        state = hf_videomae_state(_read_hf_weights(path))
        arch = _hf_architecture(path, state)
        spec_changes = {"frames": arch.frames, "crop_size": arch.image_size, **_hf_normalisation(path)}
        return "huggingface", state, arch, spec_changes
    state = unwrap_state(read_checkpoint(path))
    if any(k.startswith(("videomae.", "embeddings.patch_embeddings.")) for k in state):
        raise ScaleError(
            f"{path.name} holds Hugging Face VideoMAE weights; pass the directory that also holds its config.json"
        )
    if all(k.startswith("backbone.") for k in state):
        state = strip_prefix(state, "backbone.")
    if "blocks.0.attn.q.weight" in state or "pos_embed_spatial" in state:
        fmt, state, changes = _mae_st_file_state(state)
    elif any(re.match(r"^(encoder\.)?blocks\.0\.attn\.qkv\.weight$", k) for k in state):
        fmt, state, changes = _videomae_file_state(state, cfg)
    else:
        raise ScaleError(
            f"{path.name} is not a VideoMAE, MAE-ST or Hugging Face VideoMAE checkpoint "
            f"(keys: {preview_keys(state)}); see `scale backbones` for the accepted layouts"
        )
    return fmt, state, replace(cfg, **changes), {}
