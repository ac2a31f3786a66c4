"""Exception raised for any JPEG that cdomain cannot or will not decode.

:class:`JPEGError` is one of cdomain's user-facing errors (:class:`cdomain.errors.CdomainError`,
itself a ``ValueError``). It crosses process boundaries intact, because JPEGs are mostly decoded
in DataLoader worker processes:

* pickling keeps the type, ``source``, ``cause`` and message (``__reduce__`` re-creates it from
  ``(source, cause)``; the default would call ``JPEGError(message)``);
* it can also be built from a single, complete message, which is how torch's DataLoader
  re-raises a worker's exception in the main process (``exc_type(text)``, falling back to a
  ``RuntimeError`` for types that cannot be built that way), so callers there still catch
  ``JPEGError``.
"""

from __future__ import annotations

from cdomain.errors import CdomainError


class JPEGError(CdomainError):
    """A JPEG source is unreadable, corrupt or uses a feature cdomain does not support.

    ``JPEGError(source, cause)``: the message is ``"{source}: {cause}"``, so that a loader
    skipping bad files can report exactly which file failed and why. ``JPEGError(message)``
    (one argument) takes the message as it is; ``source`` is then None and ``cause`` the message.
    """

    source: str | None
    cause: str

    def __init__(self, source: str | None, cause: str | None = None) -> None:
        if cause is None:
            message = str(source)
            self.source, self.cause = None, message
        else:
            self.source, self.cause = source, cause
            message = f"{source}: {cause}"
        super().__init__(message)

    def __reduce__(self):
        args = self.args if self.source is None else (self.source, self.cause)
        return (self.__class__, args, self.__dict__ or None)


class UnsupportedFormat(JPEGError):
    """A readable image that cdomain does not decode in the DCT domain: another image format
    (PNG, GIF, ...), 12-bit samples, CMYK/YCCK or RGB-coded components, sampling factors it does
    not lay out (Cb and Cr sampled differently, factors that do not divide the largest).

    Raised instead of a plain :class:`JPEGError` for exactly these causes, so that a data
    pipeline can convert such files (:mod:`cdomain.jpeg.transcode`) and refuse the rest.
    """
