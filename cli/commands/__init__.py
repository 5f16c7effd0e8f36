"""Importing this package registers every command on the app."""
from . import store_cmds  # noqa: F401
from . import extract  # noqa: F401
from . import train  # noqa: F401
from . import demo  # noqa: F401
from . import retrieve  # noqa: F401
from . import probe  # noqa: F401
