"""Errors a user can cause, rendered as one clear line naming file, line and field.

Programming errors raise ordinary exceptions; anything a user can fix by
changing an input raises `UserError` (or a subclass), which the CLI prints
without a traceback and turns into a non-zero exit status.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem with user input: a file, a manifest, a flag, an unknown id."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line is not None else "") + ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        # A command-line flag is named as typed (`--candidate: ...`), a file's field as a field.
        if self.field and self.field.startswith("--"):
            field = f"{self.field}: "
        else:
            field = f"field '{self.field}': " if self.field else ""
        return f"{where}{field}{self.message}"


class WarehouseLockedError(UserError):
    """Another process holds the DuckDB file's write lock past our patience."""


class SchemaVersionError(UserError):
    """The warehouse was written by a newer prompt-release than this one."""
