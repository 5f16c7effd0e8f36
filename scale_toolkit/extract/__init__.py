"""Extraction: videos -> clips -> frozen backbone -> FeatureStore (resumable, sharded)."""
from ..lazy_exports import lazy_exports

__all__ = ["ExtractConfig", "ExtractSummary", "embed_video", "run_extraction"]
# the config alone imports no torch: `scale extract --help` reads its flag defaults from it
__getattr__, __dir__ = lazy_exports(__name__, {"ExtractConfig": ".config", "ExtractSummary": ".pipeline",
                                               "embed_video": ".embed", "run_extraction": ".pipeline"})
