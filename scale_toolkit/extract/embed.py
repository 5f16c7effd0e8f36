"""Embed one new video file exactly as a store's videos were embedded (for retrieval queries)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..backbones import load_backbone
from ..backbones.inference import embed_clips
from ..errors import ScaleError
from ..precision import resolve_precision
from ..store.attributes import StoreAttrs
from .prepare import ViewRecipe, prepare_video


def embed_video(path: str | Path, store_attrs: StoreAttrs | dict, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Decode `path` with the store's view and seed, run the store's backbone and checkpoint.

    `store_attrs`: the store's attributes (StoreAttrs, or the dict a FeatureStore or an index
    sidecar holds). Returns (features float32 [V, D], coords float32 [V, 6]). Raises ScaleError
    when the video cannot be decoded or the store's checkpoint is no longer on disk.
    """
    path = Path(path)
    if not path.is_file():
        raise ScaleError(f"query video not found: {path}")
    made = StoreAttrs.of(store_attrs)
    if not made.backbone_name:
        raise ScaleError("this store does not record its backbone (imported features?); cannot embed a new video for it")
    if made.checkpoint_missing():
        raise ScaleError(f"the store was made with checkpoint {made.checkpoint}, which is no longer there; "
                         "put it back to embed new videos")
    loaded = load_backbone(made.backbone_name, checkpoint=made.checkpoint,
                           random_init=made.checkpoint_sha256 == "random-init", **(made.backbone_options or {}))
    if made.checkpoint is None and loaded.checkpoint_sha256 != made.checkpoint_sha256:
        raise ScaleError("cannot rebuild the store's backbone weights (they were not loaded from a file)")
    recipe = ViewRecipe.for_backbone(made.view_name, loaded.spec, int(made.seed or 0), made.decoder or "auto")
    result = prepare_video(path, path.name, recipe)
    if "error" in result:
        raise ScaleError(f"cannot decode {path}: {result['error']}")
    precision = resolve_precision(made.precision or "auto", device)
    feats = embed_clips(loaded.module.to(device), torch.from_numpy(result["clips"]), 64, precision.value).numpy()
    return feats.astype(np.float32), result["coords"]
