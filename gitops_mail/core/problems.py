"""Problems are data: what validation finds, with where and how to fix it."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from gitops_mail.core.printable import shown


class Severity(enum.Enum):
    """ERROR fails validation; WARNING fails it only with ``--strict``; NOTE never does
    (what only a host can decide, told where no host is known); ACCEPTED is a warning
    the repo accepts (``accept:`` in the manifest, the reason in ``hint``)."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"
    ACCEPTED = "accepted"


@dataclass(frozen=True)
class Problem:
    """One finding about one place in the conf repo.

    ``path`` is relative to the repo root (``chasquid/domains/x/aliases``);
    ``line`` and ``column`` are 1-based, ``None`` when the problem is about a
    whole file. ``code`` is stable and machine-readable (``aliases.loop``).
    """

    path: str
    line: int | None
    code: str
    message: str
    hint: str = ""
    severity: Severity = Severity.ERROR
    column: int | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    @property
    def location(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def format(self) -> str:
        """``path:line: severity: message``, the hint on its own line; a warning
        names its code (``[aliases.shadows-user]``), which is how ``accept:`` names it.

        Paths and messages name what a pusher chose: their control characters
        are escaped, so each part stays on its one line (``printable``)."""
        text = f"{shown(self.location)}: {self.severity.value}: {shown(self.message)}"
        if self.severity in (Severity.WARNING, Severity.ACCEPTED):
            text += f" [{shown(self.code)}]"
        if self.hint:
            label = "accepted" if self.severity is Severity.ACCEPTED else "hint:"
            text += f"\n    {label} {shown(self.hint)}"
        return text

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "hint": self.hint,
        }

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.path, self.line or 0, self.column or 0, self.code, self.message)


def error(path: str, line: int | None, code: str, message: str, hint: str = "") -> Problem:
    return Problem(path, line, code, message, hint, Severity.ERROR)


def warning(path: str, line: int | None, code: str, message: str, hint: str = "") -> Problem:
    return Problem(path, line, code, message, hint, Severity.WARNING)


def note(path: str, line: int | None, code: str, message: str, hint: str = "") -> Problem:
    return Problem(path, line, code, message, hint, Severity.NOTE)


def has_errors(problems: Iterable[Problem]) -> bool:
    return any(p.is_error for p in problems)


def sorted_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Stable order for output: by file, then line; duplicates removed."""
    return sorted(set(problems), key=Problem.sort_key)
