"""The commands, one module per command group; ``register`` imports them, which registers them on the app.

A command's module reads its flags' defaults from the library's config dataclasses; those modules
import no torch, zarr or FAISS (tests/cli/test_help.py), and ``register(args)`` still imports only
the module of the command that ``args`` names, so `scale CMD` loads nothing of the others. With no
known command named (``scale --help``, a typo) it imports every module, in the order `scale --help`
lists them.
"""
from __future__ import annotations

import importlib
from typing import Sequence

MODULES = {  # command -> its module, in `scale --help` order
    "extract": "extract", "train": "train", "probe": "probe", "retrieve": "retrieve",
    "import": "store_cmds", "export": "store_cmds", "info": "store_cmds", "backbones": "store_cmds",
    "demo": "demo", "serve": "serve",
}


def register(args: Sequence[str] = ()) -> None:
    """Register the command `args` names (their first argument that is not an option: the root
    command's only option, --debug, takes no value), else every command."""
    named = next((arg for arg in args if not arg.startswith("-")), None)
    modules = [MODULES[named]] if named in MODULES else list(dict.fromkeys(MODULES.values()))
    for module in modules:
        importlib.import_module(f"{__name__}.{module}")
