"""Extraction: videos -> clips -> frozen backbone -> FeatureStore (resumable, sharded)."""
from ..lazy_exports import lazy_exports

__all__ = ["ExtractConfig", "ExtractSummary", "embed_video", "run_extraction"]
# ExtractConfig is the contracts layer's (no torch, zarr or numpy); the rest imports torch on first use
__getattr__, __dir__ = lazy_exports(__name__, {"ExtractConfig": "..contracts.extract", "ExtractSummary": ".pipeline",
                                               "embed_video": ".embed", "run_extraction": ".pipeline"})
