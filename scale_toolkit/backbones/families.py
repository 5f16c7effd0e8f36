"""Importing this module registers every backbone family."""
from . import tiny  # noqa: F401
