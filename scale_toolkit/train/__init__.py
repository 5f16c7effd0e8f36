"""SCALE SSL training: single process or torchrun/DDP."""
from scale_toolkit.lazy_exports import lazy_exports

__all__ = ["TrainConfig", "resolve_train_config", "train", "load_train_split", "ssl_metrics"]
# the config alone imports no torch: `scale train --help` reads its flag defaults from it
__getattr__, __dir__ = lazy_exports(__name__, {"TrainConfig": ".config", "resolve_train_config": ".config",
                                               "train": ".trainer", "load_train_split": ".data",
                                               "ssl_metrics": ".evaluate"})
