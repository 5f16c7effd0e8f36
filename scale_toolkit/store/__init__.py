"""The feature store (Zarr v3) and its import/export to .npz and .h5."""
from .feature_store import DONE, FAILED, PENDING, FeatureStore

__all__ = ["DONE", "FAILED", "PENDING", "FeatureStore"]
