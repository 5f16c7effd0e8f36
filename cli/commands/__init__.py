"""Importing this package registers every command on the app, in the order `scale --help` lists them."""
from . import extract  # noqa: F401
from . import train  # noqa: F401
from . import probe  # noqa: F401
from . import retrieve  # noqa: F401
from . import store_cmds  # noqa: F401  (import, export, info, backbones)
from . import demo  # noqa: F401
from . import serve  # noqa: F401
