"""SCALE SSL training: single process or torchrun/DDP."""
from scale_toolkit.train.config import TrainConfig, resolve_train_config
from scale_toolkit.train.data import load_train_split
from scale_toolkit.train.evaluate import ssl_metrics
from scale_toolkit.train.trainer import train

__all__ = ["TrainConfig", "resolve_train_config", "train", "load_train_split", "ssl_metrics"]
