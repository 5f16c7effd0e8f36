"""`timm:<model_name>`: any timm image model run on every frame, as ViC-MAE evaluates video.

Feature = mean of the patch tokens of each frame (prefix tokens such as CLS left out), then mean over
time. CNNs, whose forward_features returns a feature map, are pooled over space the same way.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ..errors import ScaleError
from ..seeding import seeded
from .builder import RANDOM_INIT_SEED, build_backbone, single_file_filter
from .checkpoint import unwrap_state
from .registry import register_backbone
from .spec import IMAGENET_MEAN, IMAGENET_STD, BackboneSpec, LoadedBackbone

SPEC = BackboneSpec(
    name="timm",
    family="timm_frames",
    frames=16,
    stride=4,
    crop_size=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    feature_dim=0,  # known once the model is built: timm's num_features
    pooling="mean of patch tokens per frame, then mean over time",
    checkpoint_formats=("timm state dict (.safetensors/.pth)", "MAE/ViC-MAE (.pth ['model'], decoder dropped)"),
    weights_hint="timm weights: model.safetensors from huggingface.co/timm/<model_name>, "
    "or a ViC-MAE / MAE checkpoint (github.com/jeffhernandez1995/ViC-MAE)",
)

# MAE/ViC-MAE pretraining parts and classifier heads that are not part of a per-frame feature
_DROPPED_PREFIXES = ("decoder", "mask_token", "projector.", "predictor.", "head.", "fc.", "classifier.")


def import_timm():
    """timm, or a ScaleError saying why it cannot be used here."""
    try:
        import timm  # noqa: PLC0415
    except Exception as err:  # timm imports torchvision, whose failures are not only ImportError
        raise ScaleError(
            f"timm backbones need timm, which failed to import ({type(err).__name__}: {str(err)[:120]}); "
            "timm needs torchvision and the torchvision wheel for this torch on PyPI is CUDA-only: "
            "install a torchvision build that matches your torch (e.g. from download.pytorch.org/whl/cpu)"
        ) from None
    return timm


class PerFrameImageModel(nn.Module):
    """Runs an image model with timm's interface on every frame of clips [B, 3, T, H, W]; returns [B, D]."""

    def __init__(self, image_model: nn.Module) -> None:
        super().__init__()
        self.image_model = image_model
        self.num_prefix_tokens = int(getattr(image_model, "num_prefix_tokens", 0))
        self.feature_dim = int(getattr(image_model, "num_features", 0))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = clips.shape
        images = clips.transpose(1, 2).reshape(batch * frames, channels, height, width)
        first = next(self.image_model.parameters(), None)
        if first is not None:
            images = images.to(first.dtype)
        out = self.image_model.forward_features(images)
        if out.ndim == 3:  # tokens [B*T, prefix + patches, D]
            per_frame = out[:, self.num_prefix_tokens:].mean(dim=1)
        elif out.ndim == 4:  # feature map; NHWC (Swin-like) when the last axis is the feature axis
            nhwc = self.feature_dim and out.shape[-1] == self.feature_dim and out.shape[1] != self.feature_dim
            per_frame = out.mean(dim=(1, 2)) if nhwc else out.mean(dim=(2, 3))
        else:
            raise ScaleError(f"forward_features returned shape {tuple(out.shape)}; expected tokens or a feature map")
        return per_frame.reshape(batch, frames, -1).mean(dim=1).float()


def image_model_state(raw: dict) -> dict:
    state = unwrap_state(raw)
    if any(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items() if k.startswith("module.")}
    return {k: v for k, v in state.items() if not k.startswith(_DROPPED_PREFIXES)}


def _resolved_spec(model: nn.Module, model_name: str) -> BackboneSpec:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    input_size = cfg.get("input_size", (3, 224, 224))
    return replace(
        SPEC,
        name=f"timm:{model_name}",
        crop_size=int(input_size[-1]),
        mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(cfg.get("std", IMAGENET_STD)),
        feature_dim=int(getattr(model, "num_features", 0)),
        options={"model_name": model_name},
    )


@register_backbone("timm", SPEC)
def make_timm(checkpoint=None, random_init=False, strict=True, model_name: str = "", **options) -> LoadedBackbone:
    if options:
        raise ScaleError(f"timm backbones do not take {', '.join(sorted(options))}")
    if not model_name:
        raise ScaleError("name the timm model: --backbone timm:<model_name>, e.g. timm:vit_base_patch16_224")
    timm = import_timm()
    try:
        model = seeded(lambda: timm.create_model(model_name, pretrained=False, num_classes=0), RANDOM_INIT_SEED)
    except RuntimeError as err:  # timm's "Unknown model" error
        raise ScaleError(f"timm cannot build '{model_name}': {str(err)[:160]}; see timm.list_models()") from None
    # the spec follows the built model (crop, mean/std, width), so the model is built before the builder runs
    keep_image_model = single_file_filter(image_model_state, f"timm:{model_name} checkpoint")
    return build_backbone(_resolved_spec(model, model_name), lambda: PerFrameImageModel(model), checkpoint,
                          keep_image_model, strict, weights_of=lambda wrapped: wrapped.image_model)
