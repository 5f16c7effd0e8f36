"""Importing this module registers every backbone family."""
from . import slow_r50, timesformer, timm_frames, tiny, videomae  # noqa: F401
