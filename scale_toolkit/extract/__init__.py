"""Extraction: videos -> clips -> frozen backbone -> FeatureStore (resumable, sharded)."""
from .embed import embed_video
from .pipeline import ExtractConfig, ExtractSummary, run_extraction

__all__ = ["ExtractConfig", "ExtractSummary", "embed_video", "run_extraction"]
