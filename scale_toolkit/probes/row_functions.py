"""Each probe row's function, registered under the row's name (rows.py declares the rows): what the
standard protocol's runner (protocol.py) feeds the row's method.

* ``knn`` rows: ``@video_vector`` — one vector per video [n, D] of the view rows ``idx``, voted on by k-NN;
* ``clip_head`` rows: ``@clip_inputs`` — the per-clip tensors [N, V, *] concatenated as the head's input;
* ``set_classifier`` rows: ``@set_classifier`` — a fresh classifier over the clip set (seeded by the caller).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

import numpy as np
import torch

from ..retrieval.descriptors import l2_normalize
from . import data as D
from .rows import REGISTRY
from .set_inputs import SetInputs
from .transformer import finetune_classifier, transformer_classifier

if TYPE_CHECKING:
    from .context import ProbeContext

VideoVector = Callable[["ProbeContext", D.View, torch.Tensor], np.ndarray]
ClipInputs = Callable[["ProbeContext", D.View], list[torch.Tensor]]
SetClassifier = Callable[["ProbeContext", SetInputs], torch.nn.Module]

VIDEO_VECTORS: dict[str, VideoVector] = {}
CLIP_INPUTS: dict[str, ClipInputs] = {}
SET_CLASSIFIERS: dict[str, SetClassifier] = {}
_TABLES: dict[str, dict] = {"knn": VIDEO_VECTORS, "clip_head": CLIP_INPUTS, "set_classifier": SET_CLASSIFIERS}

F = TypeVar("F")


def _register(table: dict, *rows: str) -> Callable[[F], F]:
    def wrap(function: F) -> F:
        for row in rows:
            table[row] = function
        return function

    return wrap


def video_vector(*rows: str) -> Callable[[VideoVector], VideoVector]:
    return _register(VIDEO_VECTORS, *rows)


def clip_inputs(*rows: str) -> Callable[[ClipInputs], ClipInputs]:
    return _register(CLIP_INPUTS, *rows)


def set_classifier(*rows: str) -> Callable[[SetClassifier], SetClassifier]:
    return _register(SET_CLASSIFIERS, *rows)


# ---------------------------------------------------------------------- k-NN rows
@video_vector("knn")
def clip_mean(ctx: ProbeContext, view: D.View, idx: torch.Tensor) -> np.ndarray:
    """k-NN: the mean of the video's clip features."""
    return D.clip_mean(view.features, idx)


@video_vector("scale_knn")
def set_token(ctx: ProbeContext, view: D.View, idx: torch.Tensor) -> np.ndarray:
    """SCALE_kNN: the SET token (and with --scale-knn-feature set+refined the mean refined clip)."""
    assert view.set_token is not None  # context.build_context embeds the views for SCALE rows
    sets = l2_normalize(view.set_token[idx].float().cpu().numpy())
    if ctx.options.scale_knn_feature == "set+refined":  # each half unit length: both weigh the same
        assert view.refined is not None
        refined = l2_normalize(D.clip_mean(view.refined, idx))
        sets = np.concatenate([sets, refined], axis=1)
    return sets


@video_vector("knn_median")
def clip_median(ctx: ProbeContext, view: D.View, idx: torch.Tensor) -> np.ndarray:
    """k-NN median: the element-wise median of the video's clip features (numpy's: the mean of the
    two middle values for an even count)."""
    return D.clip_reduce(view.features, idx, lambda x: np.median(x.cpu().numpy(), axis=1))


# ---------------------------------------------------------------------- clip heads
@clip_inputs("linear", "mlp")
def clip_features(ctx: ProbeContext, view: D.View) -> list[torch.Tensor]:
    """Linear, MLP: the clip features."""
    return [view.features]


@clip_inputs("scale_linear")
def clip_part_and_set(ctx: ProbeContext, view: D.View) -> list[torch.Tensor]:
    """SCALE_linear: the chosen clip part (--scale-clip-feature) ++ the SET token."""
    assert view.set_token is not None and view.refined is not None  # embedded: context.build_context
    clip_part = {"backbone": [view.features], "refined": [view.refined],
                 "both": [view.features, view.refined]}[ctx.options.scale_clip_feature]
    return clip_part + [view.set_token]


# ---------------------------------------------------------------------- set classifiers
@set_classifier("transformer")
def fresh_transformer(ctx: ProbeContext, train_sets: SetInputs) -> torch.nn.Module:
    """Transformer: the SCALE architecture from random init."""
    return transformer_classifier(ctx.transformer_config, ctx.n_classes, ctx.options.head, train_sets.pieces())


@set_classifier("scale_ft")
def finetuned_model(ctx: ProbeContext, train_sets: SetInputs) -> torch.nn.Module:
    """SCALE_ft: the trained model, fine-tuned."""
    assert ctx.model is not None  # options.checked_rows: SCALE_ft needs --model
    return finetune_classifier(ctx.model.module, ctx.n_classes, ctx.options.head)


def missing_functions() -> list[str]:
    """Declared rows without a function in the table of their method (empty when every row is complete)."""
    return [row.name for row in REGISTRY if row.name not in _TABLES[row.method]]
