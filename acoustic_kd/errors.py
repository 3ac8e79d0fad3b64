"""Error types that name the file, line and the fix."""

from __future__ import annotations


class AcousticKDError(Exception):
    """Base error: a message a user can act on."""


class DataError(AcousticKDError):
    """Bad input data. The message names the file, the line (when known) and the fix.

    Attributes: path, line (1-based or None), problem, fix.
    """

    def __init__(self, path, problem: str, fix: str = "", line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.problem = problem
        self.fix = fix
        where = self.path or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        msg = f"{where}: {problem}"
        if fix:
            msg += f" (fix: {fix})"
        super().__init__(msg)


class ConfigError(AcousticKDError):
    """Bad configuration or option value."""
