"""Set-classifier probes: the SCALE predictor with a linear head, trained end to end on frozen features.

* Transformer: the exact SCALE architecture from random initialisation, trained supervised.
* SCALE_ft: the SSL-trained SCALE predictor, fine-tuned the same way.

The backbone never runs: inputs are the stored clip features and crop coordinates. Head form
(``head="clip_set"``, the default): per clip i, logits = W [refined_i || SET] + b; the training loss
is the cross-entropy of every clip, the prediction the softmax averaged over the clips — the same
ensembling as the linear probe. ``head="set"``: one linear layer on the SET token only.

Example:
    >>> import torch
    >>> from scale_toolkit.model import ScaleConfig, ScaleModel
    >>> clf = SetClassifier(ScaleModel(ScaleConfig(input_dim=16, hidden=32, heads=2)), n_classes=5)
    >>> clf(torch.randn(2, 15, 16), torch.rand(2, 15, 6)).shape
    torch.Size([2, 15, 5])
"""
from __future__ import annotations

import copy
from typing import Iterator, Optional

import torch
from torch import nn

from ..errors import ScaleError
from ..model import ScaleConfig, ScaleModel
from ..model.layers import feature_stats

HEADS = ("clip_set", "set")
# parts of ScaleModel used only by the SSL losses; they get no gradient here and are not optimised
SSL_ONLY = ("pred_head", "target_head", "target_norm", "set_head_a", "set_head_b", "msk_token")


class SetClassifier(nn.Module):
    """A SCALE predictor plus a linear head; forward gives per-clip logits [B, V, C] ([B, 1, C] for head="set")."""

    def __init__(self, model: ScaleModel, n_classes: int, head: str = "clip_set") -> None:
        super().__init__()
        if head not in HEADS:
            raise ScaleError(f"set-classifier head must be one of {HEADS}, got {head!r}")
        self.model = model
        self.head_kind = head
        hidden = model.config.hidden
        self.head = nn.Linear(2 * hidden if head == "clip_set" else hidden, n_classes)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, features: torch.Tensor, coords: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        out = self.model(features, coords, valid=valid)  # valid: False slots are padding (a short video's set)
        set_token = out["set_token"]
        if self.head_kind == "set":
            return self.head(set_token).unsqueeze(1)
        refined = out["refined"]
        z = torch.cat([refined, set_token.unsqueeze(1).expand(-1, refined.shape[1], -1)], dim=-1)
        return self.head(z)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Predictor and head parameters (the SSL-only projection heads are left out)."""
        return [p for n, p in self.named_parameters() if not n.removeprefix("model.").startswith(SSL_ONLY)]


Features = Optional[torch.Tensor | Iterator[torch.Tensor]]  # clips [..., D], or pieces of them (RowsOf.pieces)


def fresh_scale_model(model_config: ScaleConfig, train_features: Features = None) -> ScaleModel:
    """SCALE's architecture from random init (the Transformer row of either protocol); a model that
    standardises its inputs takes the statistics of the clips it is trained on (`train_features`)."""
    model = ScaleModel(model_config)
    if model.standardizes and train_features is not None:
        model.set_feature_stats(*feature_stats(train_features))
    return model


def transformer_classifier(model_config: ScaleConfig, n_classes: int, head: str = "clip_set",
                           train_features: Features = None) -> SetClassifier:
    """The Transformer baseline: SCALE's architecture (`model_config`), random init, with a new head."""
    return SetClassifier(fresh_scale_model(model_config, train_features), n_classes, head)


def finetune_classifier(trained_model: ScaleModel, n_classes: int, head: str = "clip_set") -> SetClassifier:
    """SCALE_ft: a deep copy of the trained model (the caller's copy stays untouched) with a new head."""
    return SetClassifier(copy.deepcopy(trained_model), n_classes, head)
