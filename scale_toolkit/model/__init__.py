"""SCALE model: set-transformer predictor, contrastive heads, losses and masking."""
from scale_toolkit.model.config import ScaleConfig
from scale_toolkit.model.io import load_model, save_model
from scale_toolkit.model.scale import ScaleModel

__all__ = ["ScaleConfig", "ScaleModel", "save_model", "load_model"]
