"""Warnings accepted in the repo: ``accept:`` in the manifest.

Each entry names one warning's ``code`` and place (``at``: a repo path and
line, or a path alone for every such warning in that file) and says ``why``,
so a reviewer sees what is accepted, where and for what reason. An accepted
warning stays listed (as ``accepted``, with that reason) and no longer fails
``--strict``. Errors are never accepted. An entry that matches no warning is
stale (the warning was fixed or moved): that is a warning of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import NamedTuple

from gitops_mail.core.problems import Problem, Severity
from gitops_mail.core.yamldoc.document import YamlDoc

STALE = "manifest.accept-stale"


class Acceptance(NamedTuple):
    code: str
    path: str
    line: int | None  # None: anywhere in the file
    why: str
    written: str  # where the entry is: ``gitops-mail.yaml:40``
    manifest_line: int | None

    def matches(self, problem: Problem) -> bool:
        return (
            problem.code == self.code
            and problem.path == self.path
            and (self.line is None or problem.line == self.line)
        )


def acceptances(doc: YamlDoc, file: str) -> list[Acceptance]:
    """The well-formed entries of ``accept:`` (the schema reports the others)."""
    raw = doc.data.get("accept") if isinstance(doc.data, dict) else None
    found: list[Acceptance] = []
    for index, entry in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(entry, dict):
            continue
        code, at, why = entry.get("code"), entry.get("at"), entry.get("why")
        if not (isinstance(code, str) and isinstance(at, str) and isinstance(why, str)):
            continue
        path, line = _place(at)
        where = doc.line_of(("accept", index))
        written = file if where is None else f"{file}:{where}"
        found.append(Acceptance(code, path, line, why, written, where))
    return found


def _place(at: str) -> tuple[str, int | None]:
    path, colon, line = at.rpartition(":")
    if colon and line.isdigit() and path:
        return path, int(line)
    return at, None


def accepted(problems: Iterable[Problem], entries: Sequence[Acceptance]) -> list[Problem]:
    """``problems`` with each warning an entry matches marked accepted."""
    return [_accept(p, entries) for p in problems]


def _accept(problem: Problem, entries: Sequence[Acceptance]) -> Problem:
    if problem.severity is not Severity.WARNING or problem.code == STALE:
        return problem
    entry = next((e for e in entries if e.matches(problem)), None)
    if entry is None:
        return problem
    return replace(problem, severity=Severity.ACCEPTED, hint=f"in {entry.written}: {entry.why}")


def settled(problems: Sequence[Problem], entries: Sequence[Acceptance], file: str) -> list[Problem]:
    """``problems`` with acceptances applied, and a warning for each stale entry."""
    found = accepted(problems, entries)
    for entry in entries:
        matched = [p for p in found if entry.matches(p)]
        if any(p.severity is Severity.ACCEPTED for p in matched):
            continue
        at = entry.path if entry.line is None else f"{entry.path}:{entry.line}"
        if any(p.is_error for p in matched):
            message = f"accepts {entry.code} at {at}, which is an error: errors cannot be accepted"
            hint = "fix the error, then remove this entry"
        else:
            message = f"accepts {entry.code} at {at}, but there is no such warning there"
            hint = (
                "remove this entry if the warning was fixed; if its line moved, "
                "set `at:` to the line validate names now"
            )
        found.append(Problem(file, entry.manifest_line, STALE, message, hint, Severity.WARNING))
    return found
