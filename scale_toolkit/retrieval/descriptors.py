"""One descriptor per video for retrieval; ``l2_normalize`` is also the k-NN probe's (importable without faiss).

Kinds:

* ``"mean"``: the mean of the video's frozen-backbone clip features (the baseline; VCOP/IIC/CoCLR
  average their clips the same way).
* ``"set"``: the SCALE SET (CLS) token.
* ``"refined"``: the mean of SCALE's refined (contextualised) clip tokens.
* ``"set+mean"``: the SET token concatenated with the mean refined clip token; each half is
  L2-normalised first so that both weigh the same in the cosine.

``video_descriptors`` returns raw descriptors (not centred, not normalised);
``finalize_descriptors`` applies the retrieval normalisation: optional centring by a mean,
then L2 normalisation, so that inner product = cosine similarity.

Example:
    >>> import numpy as np
    >>> feats = np.random.rand(4, 15, 8).astype(np.float16)
    >>> d = finalize_descriptors(video_descriptors(feats, kind="mean"))
    >>> d.shape, bool(np.allclose((d * d).sum(1), 1, atol=1e-5))
    ((4, 8), True)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import numpy as np

from ..errors import ScaleError

if TYPE_CHECKING:  # pragma: no cover
    from ..model import ScaleModel
    from ..store import FeatureStore

BASELINE_KIND = "mean"
SCALE_KINDS = ("set", "refined", "set+mean")
DESCRIPTOR_KINDS = (BASELINE_KIND, *SCALE_KINDS)
_EPS = 1e-12


def check_kind(kind: str, has_model: bool) -> None:
    """A clear error for an unknown kind, or a SCALE kind without a model."""
    if kind not in DESCRIPTOR_KINDS:
        raise ScaleError(f"unknown descriptor {kind!r}; choose one of {', '.join(DESCRIPTOR_KINDS)}")
    if kind in SCALE_KINDS and not has_model:
        raise ScaleError(f"descriptor {kind!r} needs a SCALE model (--model RUN_DIR)")


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, _EPS)).astype(np.float32, copy=False)


def descriptor_mean(x: np.ndarray) -> np.ndarray:
    """The mean descriptor of a set of videos (float64 accumulation), used for centring."""
    return np.asarray(x, dtype=np.float64).mean(axis=0).astype(np.float32)


def finalize_descriptors(x: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """Subtract `center` (if given) and L2-normalise each row: inner product is then cosine."""
    x = np.asarray(x, dtype=np.float32)
    if center is not None:
        center = np.asarray(center, dtype=np.float32)
        if center.shape != x.shape[1:]:
            raise ScaleError(f"centre has shape {center.shape}, descriptors have dimension {x.shape[1:]}")
        x = x - center
    return l2_normalize(x)


def video_descriptors(
    features: np.ndarray,
    coords: np.ndarray | None = None,
    *,
    kind: str = BASELINE_KIND,
    model: "ScaleModel | None" = None,
    batch_size: int = 256,
    device: str | None = None,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Raw descriptors [N, Dd] float32 of N videos from their clip features [N, V, D].

    `coords` [N, V, 6] and `model` are needed for the SCALE kinds ("set", "refined", "set+mean").
    `valid` bool [N, V] marks the clips of videos of different lengths padded together (a ragged
    store's read): means cover those clips only, and the model embeds each video over interleaved
    sets of K of its clips (model/long_sets.py), the set size it was trained on.
    """
    features = np.asarray(features)
    if features.ndim != 3:
        raise ScaleError(f"expected clip features [N, V, D], got shape {features.shape}")
    check_kind(kind, model is not None)
    if kind == BASELINE_KIND:
        return _mean(features.astype(np.float32), valid)
    if coords is None or np.asarray(coords).shape != (*features.shape[:2], 6):
        raise ScaleError(f"SCALE descriptors need coords [N, V, 6] matching features {features.shape}")
    return _scale_descriptors(features, np.asarray(coords, dtype=np.float32), kind, model, batch_size, device, valid)


def _mean(x: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """Mean over clips [N, V, H] -> [N, H], of the valid clips when `valid` is given."""
    if valid is None:
        return x.mean(axis=1)
    w = np.asarray(valid, np.float32)[..., None]
    return (x * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1)


def _scale_descriptors(features, coords, kind, model, batch_size, device, valid=None) -> np.ndarray:
    import torch

    from ..model.long_sets import encode_in_sets

    in_dim = getattr(getattr(model, "config", None), "input_dim", features.shape[-1])
    if features.shape[-1] != in_dim:
        raise ScaleError(f"the store has {features.shape[-1]}-d features but the SCALE model expects {in_dim}-d; "
                         "use a store extracted with the backbone the model was trained on")
    if device is not None:
        model = model.to(device)
    parts = []
    for start in range(0, len(features), batch_size):
        f = torch.from_numpy(features[start:start + batch_size].astype(np.float32))
        c = torch.from_numpy(coords[start:start + batch_size])
        v = None if valid is None else np.asarray(valid[start:start + batch_size], bool)
        if v is None:
            out = model.encode(f, c)
        else:  # videos of any length: over sets of K clips, as the model was trained (model/long_sets.py)
            dev = next(model.parameters()).device
            out = encode_in_sets(model, f.to(dev), c.to(dev), coords[start:start + batch_size, :, 2], v)
        set_tok = out["set_token"].float().cpu().numpy()
        refined = _mean(out["refined"].float().cpu().numpy(), v)
        if kind == "set":
            parts.append(set_tok)
        elif kind == "refined":
            parts.append(refined)
        else:  # set+mean
            parts.append(np.concatenate([l2_normalize(set_tok), l2_normalize(refined)], axis=1))
    return np.concatenate(parts, axis=0).astype(np.float32, copy=False)


def store_descriptors(
    store: "FeatureStore",
    indices: Iterable[int] | np.ndarray,
    *,
    kind: str = BASELINE_KIND,
    model: "ScaleModel | None" = None,
    rows: int = 2048,
    device: str | None = None,
) -> np.ndarray:
    """Raw descriptors of the given store rows (in the given order), read in blocks of `rows`."""
    indices = np.asarray(indices, dtype=np.int64)
    check_kind(kind, model is not None)
    names = ("features",) if kind == BASELINE_KIND else ("features", "coords")
    parts = []
    for _, block in store.iter_blocks(indices, names=names, rows=rows):
        parts.append(video_descriptors(block["features"], block.get("coords"), kind=kind, model=model, device=device,
                                       valid=block.get("valid")))
    if not parts:
        dim = store.feature_dim if kind == BASELINE_KIND else None
        return np.zeros((0, dim or 0), np.float32)
    return np.concatenate(parts, axis=0)
