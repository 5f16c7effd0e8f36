"""`ExtractConfig` lives in the torch-free contracts layer (scale_toolkit/contracts/extract.py); this
old import path still works."""
from ..contracts.extract import DECODERS, ExtractConfig

__all__ = ["DECODERS", "ExtractConfig"]
