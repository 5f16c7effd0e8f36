"""Writers of random-weight checkpoints in each public key layout, independent of scale's own modules.

Each writer spells out the published key names (MCG-NJU/VideoMAE, Hugging Face, facebookresearch/mae_st,
PySlowFast, kahnchana/svt) so that a renaming mistake in scale's adapters cannot cancel itself out.
"""
from __future__ import annotations

import argparse
import re

import torch


def import_hf_videomae():
    """transformers' VideoMAE classes (the reference implementation for the parity tests)."""
    from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEForVideoClassification, VideoMAEModel

    return VideoMAEConfig, VideoMAEModel, VideoMAEForPreTraining, VideoMAEForVideoClassification


def hf_small_config(**overrides):
    from transformers import VideoMAEConfig

    values = dict(
        image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=128, use_mean_pooling=False, layer_norm_eps=1e-6,
        decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=64,
    )
    values.update(overrides)
    return VideoMAEConfig(**values)


def randomise_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial values everywhere (norm weights and biases too), so every key matters to the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if name.endswith("weight") and param.ndim == 1:  # norm scales around 1
                param.copy_(1.0 + 0.1 * noise)
            else:
                param.copy_(0.05 * noise)
    return module.eval()


def hf_encoder_to_original(hf_state: dict, prefix: str = "") -> dict:
    """HF VideoMAE encoder keys -> MCG-NJU/VideoMAE names (unprefixed), fusing q/k/v."""
    out = {}
    layer_names = {
        "layernorm_before": "norm1", "layernorm_after": "norm2", "attention.output.dense": "attn.proj",
        "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
    }
    state = {k[len(prefix):]: v for k, v in hf_state.items() if k.startswith(prefix)}
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.layer\.(\d+)\.", k)))
    for i in range(depth):
        p = f"encoder.layer.{i}."
        qkv = [state[p + f"attention.attention.{n}.weight"] for n in ("query", "key", "value")]
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat(qkv)
        out[f"blocks.{i}.attn.q_bias"] = state[p + "attention.attention.query.bias"]
        out[f"blocks.{i}.attn.v_bias"] = state[p + "attention.attention.value.bias"]
        for hf_name, name in layer_names.items():
            for part in ("weight", "bias"):
                out[f"blocks.{i}.{name}.{part}"] = state[f"{p}{hf_name}.{part}"]
    out["patch_embed.proj.weight"] = state["embeddings.patch_embeddings.projection.weight"]
    out["patch_embed.proj.bias"] = state["embeddings.patch_embeddings.projection.bias"]
    if "layernorm.weight" in state:
        out["norm.weight"], out["norm.bias"] = state["layernorm.weight"], state["layernorm.bias"]
    return out


def original_pretrain_checkpoint(hf_state: dict, prefix: str = "") -> dict:
    """What MCG-NJU/VideoMAE's run_mae_pretraining saves: {'model': encoder.* + decoder, 'optimizer', 'args', ...}."""
    model = {f"encoder.{k}": v for k, v in hf_encoder_to_original(hf_state, prefix).items()}
    width = model["encoder.norm.weight"].shape[0]
    model.update({
        "encoder_to_decoder.weight": torch.randn(32, width),
        "mask_token": torch.zeros(1, 1, 32),
        "decoder.blocks.0.attn.qkv.weight": torch.randn(96, 32),
        "decoder.norm.weight": torch.ones(32),
        "decoder.head.weight": torch.randn(1536, 32),
    })
    return {"model": model, "optimizer": {"state": {}, "param_groups": []}, "epoch": 1599,
            "scaler": {"scale": 65536.0}, "args": argparse.Namespace(model="pretrain_videomae_base_patch16_224")}


def original_finetune_checkpoint(hf_cls_state: dict) -> dict:
    """VideoMAE fine-tune (DeepSpeed) layout: {'module': blocks.* + fc_norm + head}."""
    module = hf_encoder_to_original(hf_cls_state, "videomae.")
    module["fc_norm.weight"], module["fc_norm.bias"] = hf_cls_state["fc_norm.weight"], hf_cls_state["fc_norm.bias"]
    module["head.weight"], module["head.bias"] = hf_cls_state["classifier.weight"], hf_cls_state["classifier.bias"]
    return {"module": module}


def mae_st_pretrain_checkpoint(hf_state: dict, position_table: torch.Tensor, prefix: str = "") -> dict:
    """facebookresearch/mae_st pretrain layout (split q/k/v with bias, learned pos_embed, decoder_*)."""
    original = hf_encoder_to_original(hf_state, prefix)
    model = {}
    for key, value in original.items():
        if key.endswith("attn.qkv.weight"):
            q, k, v = value.chunk(3)
            base = key[: -len("qkv.weight")]
            model.update({base + "q.weight": q, base + "k.weight": k, base + "v.weight": v})
        elif key.endswith("attn.q_bias"):
            base = key[: -len("q_bias")]
            model[base + "q.bias"] = value
            model[base + "k.bias"] = torch.zeros_like(value)  # VideoMAE's implicit zero k bias
        elif key.endswith("attn.v_bias"):
            model[key[: -len("v_bias")] + "v.bias"] = value
        else:
            model[key] = value
    model["pos_embed"] = position_table.clone()
    model.update({"decoder_embed.weight": torch.randn(32, 64), "mask_token": torch.zeros(1, 1, 32),
                  "decoder_pos_embed": torch.zeros(1, 8, 32), "decoder_norm.weight": torch.ones(32),
                  "decoder_pred.weight": torch.randn(1536, 32)})
    return {"model": model, "epoch": 10, "args": argparse.Namespace(model="mae_vit_base_patch16")}


# ------------------------------------------------------------------ PySlowFast Slow-R50 (ρBYOL)

SLOW_R50_STAGES = {2: (3, 64, 256, 1), 3: (4, 128, 512, 1), 4: (6, 256, 1024, 3), 5: (3, 512, 2048, 3)}


def _bn(prefix: str, channels: int, gen: torch.Generator) -> dict:
    return {
        prefix + ".weight": 1 + 0.1 * torch.randn(channels, generator=gen),
        prefix + ".bias": 0.1 * torch.randn(channels, generator=gen),
        prefix + ".running_mean": 0.1 * torch.randn(channels, generator=gen),
        prefix + ".running_var": 1 + 0.1 * torch.rand(channels, generator=gen),
        prefix + ".num_batches_tracked": torch.tensor(1000),
    }


def slowfast_slow_r50_encoder(seed: int) -> dict:
    """One Slow-R50 encoder as PySlowFast names it (`s1.pathway0_stem`, `s{2..5}.pathway0_res{i}`)."""
    gen = torch.Generator().manual_seed(seed)

    def conv(*shape: int) -> torch.Tensor:
        fan_in = shape[1] * shape[2] * shape[3] * shape[4]
        return torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5

    state = {"s1.pathway0_stem.conv.weight": conv(64, 3, 1, 7, 7), **_bn("s1.pathway0_stem.bn", 64, gen)}
    dim_in = 64
    for stage, (blocks, inner, out, t) in SLOW_R50_STAGES.items():
        for i in range(blocks):
            p = f"s{stage}.pathway0_res{i}."
            if i == 0:
                state[p + "branch1.weight"] = conv(out, dim_in, 1, 1, 1)
                state.update(_bn(p + "branch1_bn", out, gen))
            state[p + "branch2.a.weight"] = conv(inner, dim_in if i == 0 else out, t, 1, 1)
            state.update(_bn(p + "branch2.a_bn", inner, gen))
            state[p + "branch2.b.weight"] = conv(inner, inner, 1, 3, 3)
            state.update(_bn(p + "branch2.b_bn", inner, gen))
            state[p + "branch2.c.weight"] = conv(out, inner, 1, 1, 1)
            state.update(_bn(p + "branch2.c_bn", out, gen))
        dim_in = out
    return state


def rho_byol_checkpoint(online_seed: int = 1, momentum_seed: int = 2) -> dict:
    """A PySlowFast ContrastiveModel (BYOL) checkpoint: both encoders, heads, predictor, queue buffers."""
    model_state = {}
    for prefix, seed in (("backbone.", online_seed), ("backbone_hist.", momentum_seed)):
        model_state.update({prefix + k: v for k, v in slowfast_slow_r50_encoder(seed).items()})
        model_state[prefix + "head.projection.projection.0.weight"] = torch.randn(4096, 2048)
    model_state["predictor.0.projection.0.weight"] = torch.randn(8, 8)
    model_state["ptr"], model_state["iter"] = torch.tensor([0]), torch.tensor([7])
    return {"epoch": 200, "model_state": model_state, "optimizer_state": {}, "cfg": "MODEL:\n  ARCH: slow\n"}


# ------------------------------------------------------------------ SVT TimeSformer


def svt_release_checkpoint(width: int = 768, depth: int = 12, frames: int = 8, grid: int = 14, patch: int = 16,
                           seed: int = 0, dtype=torch.float32) -> dict:
    """kahnchana/svt kinetics400_vitb_ssl.pth layout: `backbone.` TimeSformer keys + a DINO `head.*`."""
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape: int) -> torch.Tensor:
        return (0.05 * torch.randn(shape, generator=gen)).to(dtype)

    def norm(name: str) -> dict:
        return {name + ".weight": (1 + rnd(width)).to(dtype), name + ".bias": rnd(width)}

    state = {"cls_token": rnd(1, 1, width), "pos_embed": rnd(1, grid * grid + 1, width),
             "time_embed": rnd(1, frames, width), "patch_embed.proj.weight": rnd(width, 3, patch, patch),
             "patch_embed.proj.bias": rnd(width), **norm("norm")}
    for i in range(depth):
        p = f"blocks.{i}."
        state.update(norm(p + "norm1"))
        state.update(norm(p + "temporal_norm1"))
        state.update(norm(p + "norm2"))
        for attn in ("attn", "temporal_attn"):
            state.update({p + attn + ".qkv.weight": rnd(3 * width, width), p + attn + ".qkv.bias": rnd(3 * width),
                          p + attn + ".proj.weight": rnd(width, width), p + attn + ".proj.bias": rnd(width)})
        state.update({p + "temporal_fc.weight": rnd(width, width), p + "temporal_fc.bias": rnd(width),
                      p + "mlp.fc1.weight": rnd(4 * width, width), p + "mlp.fc1.bias": rnd(4 * width),
                      p + "mlp.fc2.weight": rnd(width, 4 * width), p + "mlp.fc2.bias": rnd(width)})
    release = {"backbone." + k: v for k, v in state.items()}
    release.update({"head.mlp.0.weight": rnd(16, width), "head.last_layer.weight_g": rnd(32, 1)})
    return release
