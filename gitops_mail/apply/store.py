"""What happened on this host: the live revision and the last 50 attempts.

One JSON file, ``state_dir/state.json``, replaced atomically on every write,
so a crash leaves the previous record or the new one, never half of it. It is
0640 with the state dir's group: the post-receive hook, running as the
pusher, reads it when ``hooks install`` has shared the state dir
(``host.statedir``). It is read without following a symlink, and only when
root (or the user gitops-mail runs as) wrote it.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gitops_mail.errors import GitopsMailError
from gitops_mail.host import localfs, statedir
from gitops_mail.host.localfs import atomic_write

HISTORY_LIMIT = 50
GIVEN_UP = ("failed", "invalid")  # results the daemon does not try again by itself
_HINT = "the file is gitops-mail's own record; move it away to start a fresh history"
_DIR_HINT = statedir.HINT
_NOT_OURS_HINT = (
    "gitops-mail wrote it, never as a symlink nor as another user: move it away (someone "
    "else may have put it there) to start a fresh history"
)
_DENIED_HINT = (
    "the push hooks read it as the pushing user: as root, run `gitops-mail hooks install "
    "REPO` to let the repo's group read the results"
)
_TEXT_FIELDS = ("revision", "started_at", "result", "reason", "summary", "action")
_REQUIRED = ("revision", "started_at", "result")


@dataclass(frozen=True)
class Attempt:
    revision: str
    started_at: str  # ISO 8601, UTC
    result: str  # applied | unchanged | failed | invalid | interrupted
    reason: str = ""
    summary: str = ""  # the plan in one line, never a secret
    action: str = "none"
    phases_ms: dict[str, float] = field(default_factory=dict)
    duration_ms: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.result in ("applied", "unchanged")


@dataclass(frozen=True)
class Record:
    applied: str | None = None  # the revision the live config dir holds
    history: tuple[Attempt, ...] = ()  # newest first

    @property
    def last(self) -> Attempt | None:
        return self.history[0] if self.history else None

    def repeats(self, attempt: Attempt) -> bool:
        """``attempt`` says only what the newest entry says: ``revision`` is live, unchanged."""
        last = self.last
        return (
            attempt.result == "unchanged"
            and self.applied == attempt.revision
            and last is not None
            and (last.revision, last.result, last.reason)
            == (attempt.revision, attempt.result, attempt.reason)
        )

    def failed(self, revision: str) -> Attempt | None:
        """The failed attempt of ``revision`` if its last attempt failed."""
        for attempt in self.history:
            if attempt.revision == revision:
                return None if attempt.succeeded else attempt
        return None

    def previous_good(self) -> str | None:
        """The newest revision, other than the live one, whose last attempt succeeded."""
        seen: set[str] = set()
        for attempt in self.history:
            if attempt.revision in seen:
                continue  # only a revision's newest attempt says whether it is good
            seen.add(attempt.revision)
            if attempt.succeeded and attempt.revision != self.applied:
                return attempt.revision
        return None


class StateStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "state.json"

    def load(self) -> Record:
        try:
            data = localfs.read_own(self.path)
        except FileNotFoundError:
            return Record()
        except OSError as exc:
            raise GitopsMailError(f"cannot read {self.path}: {exc.strerror}", _hint(exc)) from exc
        try:
            return _record(_json(data))
        except _Shape as exc:
            raise GitopsMailError(f"cannot read {self.path}: {exc}", _HINT) from None

    def record(self, attempt: Attempt, *, applied: str | None = None) -> Record:
        """Add ``attempt`` to history, newest first; an ``unchanged`` one that would only
        repeat the newest entry (the same revision live, unchanged, for the same reason)
        is not added: history keeps one entry per commit and outcome, not one per no-op."""
        old = self.load()
        if old.repeats(attempt) and applied in (None, attempt.revision):
            return old
        new = Record(
            applied=applied if applied is not None else old.applied,
            history=(attempt, *old.history)[:HISTORY_LIMIT],
        )
        self._write(new)
        return new

    def advance(self, applied: str) -> Record:
        """Record ``applied`` as live without a history entry (the daemon's own commit,
        which changes nothing chasquid reads, on top of the live revision)."""
        old = self.load()
        new = Record(applied=applied, history=old.history)
        self._write(new)
        return new

    def _write(self, new: Record) -> None:
        doc = {"applied": new.applied, "history": [asdict(a) for a in new.history]}
        statedir.prepare(self.path.parent)
        statedir.write_shared(self.path, (json.dumps(doc, indent=1) + "\n").encode())


def _hint(exc: OSError) -> str:
    if isinstance(exc, NotADirectoryError):
        return _DIR_HINT
    if isinstance(exc, localfs.NotOurs):
        return _NOT_OURS_HINT
    return _DENIED_HINT if isinstance(exc, PermissionError) else _HINT


class _Shape(Exception):
    """state.json is JSON, but not a record this module wrote."""


def _json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))  # as written; bytes would also guess UTF-16
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise _Shape(f"it is not valid JSON ({exc.msg} at {where})") from None
    except UnicodeDecodeError:
        raise _Shape("it is not valid JSON (not UTF-8 text)") from None
    except RecursionError:
        raise _Shape("it is nested too deeply to be a record") from None


def _record(raw: Any) -> Record:
    if not isinstance(raw, dict):
        raise _Shape("it is not a JSON object")
    applied, history = raw.get("applied"), raw.get("history", [])
    if applied is not None and not isinstance(applied, str):
        raise _Shape("'applied' is not a revision")
    if not isinstance(history, list):
        raise _Shape("'history' is not a list")
    return Record(applied, tuple(_attempt(i, a) for i, a in enumerate(history)))


def _attempt(index: int, raw: Any) -> Attempt:
    where = f"history[{index}]"
    if not isinstance(raw, dict):
        raise _Shape(f"{where} is not a JSON object")
    for name in _REQUIRED:
        if name not in raw:
            raise _Shape(f"{where} has no '{name}'")
    for name in _TEXT_FIELDS:
        if not isinstance(raw.get(name, ""), str):
            raise _Shape(f"{where}.{name} is not a string")
    phases = raw.get("phases_ms", {})
    if not isinstance(phases, dict) or not all(_number(v) for v in phases.values()):
        raise _Shape(f"{where}.phases_ms is not a mapping of phase to milliseconds")
    if not _number(raw.get("duration_ms", 0.0)):
        raise _Shape(f"{where}.duration_ms is not a number")
    known = {name: raw[name] for name in _TEXT_FIELDS if name in raw}  # newer fields are ignored
    return Attempt(
        **known,
        phases_ms={str(k): float(v) for k, v in phases.items()},
        duration_ms=float(raw.get("duration_ms", 0.0)),
    )


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Unproven:
    """``state_dir/unproven``: a revision went live whose proof has not finished.

    Set just before the swap and removed once the outcome is recorded (new state
    proven, or old state restored and proven). Found at the start of an apply,
    it means the last one died in between: chasquid may not serve the tree on
    disk, so restarting and probing is due even when nothing else is. A swap
    that fails (and is undone) leaves it too: one restart more than needed,
    never one less.
    """

    path: Path

    @classmethod
    def of(cls, state_dir: Path) -> Unproven:
        return cls(state_dir / "unproven")

    def present(self) -> bool:
        return os.path.lexists(self.path)  # whatever is there: one restart more, never less

    def revision(self) -> str | None:
        try:
            return localfs.read_own(self.path).decode("utf-8", "replace").strip() or None
        except OSError:
            return None

    def mark(self, revision: str) -> None:
        atomic_write(self.path, f"{revision}\n".encode(), mode=statedir.FILE_MODE)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
