"""The one error type for user mistakes; the CLI prints it as one line and exits with status 2."""


class ScaleError(Exception):
    """A mistake the user can fix (bad path, wrong store, unknown backbone, ...).

    The message says what is wrong and how to fix it, in one line.
    """


def os_error_message(exc: OSError) -> str:
    """One line for a filesystem fault (full disk, read-only or missing folder, no permission)."""
    import errno
    import os
    import re

    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    code = exc.errno
    if code is None:  # h5py and others put "errno = 28" into a multi-line message
        found = re.search(r"errno = (\d+)", str(exc))
        code = int(found.group(1)) if found else None
    what = os.strerror(code) if code else " ".join((exc.strerror or str(exc) or type(exc).__name__).split())[:200]
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        hint = "free some space, then rerun"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = "write somewhere writable (or fix the permissions), then rerun"
    else:
        hint = "check the path, then rerun"
    return f"cannot complete: {what}{where}; {hint}"
