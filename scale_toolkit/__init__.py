"""scale: Spatio-Temporal Crop Aggregation for video representation learning on a budget."""
__version__ = "0.1.0"
