"""SCALE model: set-transformer predictor, contrastive heads, losses and masking."""
from scale_toolkit.lazy_exports import lazy_exports

__all__ = ["ScaleConfig", "ScaleModel", "save_model", "load_model"]
# the config alone imports no torch: `scale train --help` reads its flag defaults from it
__getattr__, __dir__ = lazy_exports(__name__, {"ScaleConfig": ".config", "ScaleModel": ".scale",
                                               "save_model": ".io", "load_model": ".io"})
