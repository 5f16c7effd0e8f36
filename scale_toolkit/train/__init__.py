"""SCALE SSL training: single process or torchrun/DDP."""
from scale_toolkit.train.config import TrainConfig
from scale_toolkit.train.data import load_train_split
from scale_toolkit.train.evaluate import ssl_metrics
from scale_toolkit.train.trainer import train

__all__ = ["TrainConfig", "train", "load_train_split", "ssl_metrics"]
