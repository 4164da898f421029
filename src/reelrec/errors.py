"""Errors reelrec raises on purpose.

A message names the bad value, what was expected and how to fix it. The CLI maps
`ReelrecError.exit_code` to the process exit status (2 for bad input or configuration).
"""

from __future__ import annotations


class ReelrecError(Exception):
    """Base class: an error the user can act on, shown without a traceback."""

    exit_code = 1


class DataError(ReelrecError):
    """A file-level input problem (missing file or column, wrong type, empty file)."""

    exit_code = 2

    def __init__(self, path: object, problem: str, column: str | None = None) -> None:
        where = f"{path}" + (f", column '{column}'" if column else "")
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.column = column
        self.problem = problem


class ConfigError(ReelrecError, ValueError):
    """A configuration value is out of range or of the wrong kind."""

    exit_code = 2


class DeviceError(ReelrecError):
    """The requested device is not present or its runtime is not installed."""

    exit_code = 2


class IntegrityError(ReelrecError):
    """A stored file does not match its manifest (truncated, corrupted or missing)."""

    exit_code = 2


class NotFittedError(ReelrecError, AttributeError):
    """A stateful component was used before `fit` / `partial_fit`."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is not fitted yet: call fit() or partial_fit() first")
