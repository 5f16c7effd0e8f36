"""The feature store (Zarr v3) and its import/export to .npz and .h5."""
from ..lazy_exports import lazy_exports

__all__ = ["DONE", "FAILED", "PENDING", "FeatureStore"]
# zarr on first use only: the CLI's --help pages import modules of this package (names.py)
__getattr__, __dir__ = lazy_exports(__name__, {name: ".feature_store" for name in __all__})
