"""The exception types every cdomain layer raises for problems a user can fix.

Each message names the file or option and the cause, so a command can print it as one line.
All of them pickle with their arguments intact (``__reduce__``), so an error raised inside a
DataLoader worker process reaches the main process as the same type with the same message.
"""

from __future__ import annotations


class CdomainError(ValueError):
    """Base of cdomain's own errors: ``str(error)`` is the whole, user-facing message."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)

    def __reduce__(self):
        return (self.__class__, self.args, self.__dict__ or None)


class ConfigError(CdomainError):
    """An option (flag, YAML key or argument) has a wrong type or value; names the option.

    ``option`` is the option's name as the library knows it (``batch_size``); commands show it
    as their flag (``--batch-size``).
    """

    def __init__(self, option: str, message: str) -> None:
        super().__init__(option, message)
        self.option, self.message = option, message

    def __str__(self) -> str:
        return f"{self.option}: {self.message}"


class CheckpointError(CdomainError):
    """A checkpoint or run-state file cannot be used; names the file and the cause."""


class RunFolderError(CdomainError):
    """An output folder cannot be used as asked (not empty, not a folder, nothing to resume)."""


class DataError(CdomainError):
    """A dataset (folder, file list, cache) cannot be read as asked; names it and the cause."""
