"""Package names imported on first use, so importing a package for a light module of it (a config
dataclass the CLI reads its flag defaults from) does not import torch or zarr with it.

In a package's ``__init__.py``::

    __getattr__, __dir__ = lazy_exports(__name__, {"train": ".trainer", "TrainConfig": ".config"})

then ``from scale_toolkit.train import train`` imports ``.trainer`` at that moment.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def lazy_exports(package: str, sources: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of `package`, which resolve each name of
    `sources` (name -> relative module) from its module on first access and keep it.

    >>> getattr_, dir_ = lazy_exports("scale_toolkit", {"ScaleError": ".errors"})
    >>> getattr_("ScaleError").__name__, "ScaleError" in dir_()
    ('ScaleError', True)
    """
    def __getattr__(name: str) -> Any:
        source = sources.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source, package), name)
        setattr(sys.modules[package], name, value)  # later accesses skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *sources})

    return __getattr__, __dir__
