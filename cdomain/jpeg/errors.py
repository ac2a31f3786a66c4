"""Exception raised for any JPEG that cdomain cannot or will not decode."""

from __future__ import annotations


class JPEGError(ValueError):
    """A JPEG source is unreadable, corrupt or uses a feature cdomain does not support.

    The message always names the source (a path, or ``<bytes>``) and the cause, so that a
    loader skipping bad files can report exactly which file failed and why.
    """

    def __init__(self, source: str, cause: str) -> None:
        self.source = source
        self.cause = cause
        super().__init__(f"{source}: {cause}")
