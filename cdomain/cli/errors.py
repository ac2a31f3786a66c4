"""How every command reports a user error: one line naming the flag or file and the cause.

Errors that are not the user's (bugs) are re-raised with their traceback.
"""

from __future__ import annotations

import errno
import argparse
import sys
from dataclasses import fields
from typing import Callable

from cdomain.atomic import tidy_on_failure
from cdomain.errors import CdomainError, ConfigError


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number >= 0 (a worker count, say)."""
    return _whole_number(text, 0)


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be >= {least}, got {value}")
    return value


def option_text(option: str) -> str:
    """A config option as its command-line flag (``batch_size`` -> ``--batch-size``)."""
    from cdomain.train.config import TrainConfig

    names = {item.name for item in fields(TrainConfig)}
    return "--" + option.replace("_", "-") if option in names else option


def message(error: BaseException, *, resumable: bool = False) -> str | None:
    """The one-line message for a user error, or None if ``error`` is not one."""
    if isinstance(error, ConfigError):
        return f"{option_text(error.option)}: {error.message}"
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        where = f" writing {error.filename}" if error.filename else ""
        tail = "; every completed epoch is committed intact: free space, then --resume" if resumable else \
            "; files already written are complete"
        return f"no space left on the device{where}{tail}"
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    if isinstance(error, (CdomainError, ValueError, FloatingPointError, ImportError, OSError)):
        return str(error)
    return None


def report(prog: str, error: BaseException, *, resumable: bool = False) -> int:
    """Print ``prog: error: ...`` and return exit status 2, or re-raise a non-user error."""
    text = message(error, resumable=resumable)
    if text is None:
        raise error
    print(f"{prog}: error: {text}", file=sys.stderr)
    return 2


def run_command(prog: str, action: Callable[[], object], *, interrupted: str = "", resumable: bool = False) -> int:
    """Run a command's ``action``: 0 on success, 2 with one line for a user error, 130 on Ctrl-C.

    A command that fails or is interrupted leaves no empty folder it created behind
    (:func:`cdomain.atomic.tidy_on_failure`).
    """
    try:
        with tidy_on_failure():
            action()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted{interrupted}", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001  report() re-raises what is not a user error
        return report(prog, error, resumable=resumable)
    return 0
