"""The one exception type for mistakes a user can fix.

Library code raises :class:`PdeforgeError` with a one-line message for bad
input, bad files and failed solves; the command line prints the message and
exits non-zero without a traceback. Anything else is a bug and keeps its
traceback.
"""

__all__ = ["PdeforgeError"]


class PdeforgeError(Exception):
    """A user-facing error: its message is a complete, single-line explanation."""
