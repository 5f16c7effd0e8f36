"""VideoMAE and CrossVideoMAE backbones: the VideoViT variants registered under their CLI names.

The checkpoint layouts they read (original VideoMAE, Hugging Face directories, MAE-ST) are recognised and
mapped by `videomae_checkpoints`; this module only names the variants and hands them to the shared builder.

CrossVideoMAE (arXiv 2502.07811) publishes no code or weights; its video branch is an MAE-ST ViT-B/16, so
`cvmae` loads a user's checkpoint in the MAE-ST or VideoMAE layout (or a Hugging Face directory).
"""
from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from ..errors import ScaleError
from .builder import FamilyWeights, build_backbone
from .registry import register_backbone
from .spec import IMAGENET_MEAN, IMAGENET_STD, KINETICS_MEAN, KINETICS_STD, BackboneSpec, LoadedBackbone
from .video_vit import POOLINGS, VideoViT, VideoViTConfig
from .videomae_checkpoints import FORMATS, read_video_vit_checkpoint

VIT_B = VideoViTConfig(width=768, depth=12, heads=12, mlp_hidden=3072)
VIT_L = VideoViTConfig(width=1024, depth=24, heads=16, mlp_hidden=4096)


def _spec(name: str, cfg: VideoViTConfig, mean, std, hint: str) -> BackboneSpec:
    return BackboneSpec(
        name=name,
        family="video_vit",
        frames=16,
        stride=4,
        crop_size=224,
        mean=mean,
        std=std,
        feature_dim=cfg.width,
        pooling=POOLINGS[cfg.pooling],
        checkpoint_formats=FORMATS,
        weights_hint=hint,
    )


# name -> (architecture, default spec). Mean/std are what each model was trained with (SCALE itself fed
# every teacher 0.45/0.225; pass your own in the view config to reproduce that).
VARIANTS: dict[str, tuple[VideoViTConfig, BackboneSpec]] = {
    "videomae-b": (
        VIT_B,
        _spec("videomae-b", VIT_B, IMAGENET_MEAN, IMAGENET_STD,
              "VideoMAE ViT-B K400 pretrain checkpoint from github.com/MCG-NJU/VideoMAE MODEL_ZOO.md, "
              "or the huggingface.co/MCG-NJU/videomae-base directory"),
    ),
    "videomae-l": (
        VIT_L,
        _spec("videomae-l", VIT_L, IMAGENET_MEAN, IMAGENET_STD,
              "VideoMAE ViT-L K400 pretrain checkpoint from github.com/MCG-NJU/VideoMAE MODEL_ZOO.md, "
              "or the huggingface.co/MCG-NJU/videomae-large directory"),
    ),
    "videomae-b-ft": (
        replace(VIT_B, pooling="mean_fc_norm"),
        _spec("videomae-b-ft", replace(VIT_B, pooling="mean_fc_norm"), IMAGENET_MEAN, IMAGENET_STD,
              "VideoMAE ViT-B K400 fine-tuned checkpoint from github.com/MCG-NJU/VideoMAE MODEL_ZOO.md, "
              "or the huggingface.co/MCG-NJU/videomae-base-finetuned-kinetics directory"),
    ),
    "cvmae": (
        VIT_B,
        _spec("cvmae", VIT_B, KINETICS_MEAN, KINETICS_STD,
              "CrossVideoMAE (arXiv 2502.07811) publishes no weights; pass your own ViT-B/16 video encoder "
              "saved in the MAE-ST or VideoMAE layout, or a Hugging Face VideoMAE directory"),
    ),
}

def _pooling_hint(arch: VideoViTConfig, state: dict) -> str:
    if arch.pooling == "norm_mean" and "fc_norm.weight" in state:
        return "; this looks like a fine-tuned checkpoint, use --backbone videomae-b-ft"
    if arch.pooling == "mean_fc_norm" and "norm.weight" in state:
        return "; this looks like a pretrained checkpoint, use --backbone videomae-b, videomae-l or cvmae"
    return ""


def _video_vit_filter(name: str, cfg: VideoViTConfig, spec: BackboneSpec):
    """The family filter: the file's layout decides the exact architecture (qkv bias, positions, pooling)."""

    def adapt(path: Path) -> FamilyWeights:
        fmt, state, arch, spec_changes = read_video_vit_checkpoint(path, cfg)
        resolved = replace(
            spec,
            feature_dim=arch.width,
            pooling=POOLINGS[arch.pooling],
            options={"format": fmt, "architecture": asdict(arch)},
            **spec_changes,
        )
        return FamilyWeights(state, f"{fmt} checkpoint {path.name}", build=lambda: VideoViT(arch), spec=resolved,
                             mismatch_hint=f" (for backbone '{name}'){_pooling_hint(arch, state)}")

    return adapt


def load_video_vit(
    name: str, cfg: VideoViTConfig, spec: BackboneSpec, checkpoint: Path | None, strict: bool = True
) -> LoadedBackbone:
    """Build a VideoViT with architecture `cfg` (HF directories: their config.json) and load `checkpoint`."""
    random_init_spec = replace(spec, options={"format": "random-init", "architecture": asdict(cfg)})
    return build_backbone(random_init_spec, lambda: VideoViT(cfg), checkpoint, _video_vit_filter(name, cfg, spec), strict)


def _register(name: str) -> None:
    cfg, spec = VARIANTS[name]

    @register_backbone(name, spec)
    def make(checkpoint=None, random_init=False, strict=True, **options) -> LoadedBackbone:
        if options:
            raise ScaleError(f"backbone '{name}' takes no options (got {', '.join(sorted(options))})")
        return load_video_vit(name, cfg, spec, checkpoint, strict)


for _name in VARIANTS:
    _register(_name)
