"""The one error type for user mistakes; the CLI prints it as one line and exits with status 2."""


class ScaleError(Exception):
    """A mistake the user can fix (bad path, wrong store, unknown backbone, ...).

    The message says what is wrong and how to fix it, in one line.
    """
