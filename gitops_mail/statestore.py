"""What happened on this host: the live revision and the last 50 attempts.

One JSON file, ``state_dir/state.json``, replaced atomically on every write,
so a crash leaves the previous record or the new one, never half of it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gitops_mail import localfs
from gitops_mail.errors import GitopsMailError

HISTORY_LIMIT = 50


@dataclass(frozen=True)
class Attempt:
    revision: str
    started_at: str  # ISO 8601, UTC
    result: str  # applied | unchanged | failed | invalid | restored-failed
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

    def failed(self, revision: str) -> Attempt | None:
        """The failed attempt of ``revision`` if its last attempt failed."""
        for attempt in self.history:
            if attempt.revision == revision:
                return None if attempt.succeeded else attempt
        return None

    def previous_good(self) -> str | None:
        """The last revision applied successfully before the live one."""
        for attempt in self.history:
            if attempt.succeeded and attempt.revision != self.applied:
                return attempt.revision
        return None


class StateStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "state.json"

    def load(self) -> Record:
        try:
            raw = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return Record()
        except (OSError, ValueError) as exc:
            raise GitopsMailError(
                f"cannot read {self.path}: {exc}",
                "the file is gitops-mail's own record; move it away to start a fresh history",
            ) from exc
        return _record(raw)

    def record(self, attempt: Attempt, *, applied: str | None = None) -> Record:
        old = self.load()
        new = Record(
            applied=applied if applied is not None else old.applied,
            history=(attempt, *old.history)[:HISTORY_LIMIT],
        )
        doc = {"applied": new.applied, "history": [asdict(a) for a in new.history]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        localfs.atomic_write(self.path, (json.dumps(doc, indent=1) + "\n").encode(), mode=0o600)
        return new


def _record(raw: Any) -> Record:
    history = tuple(Attempt(**a) for a in raw.get("history", []))
    return Record(applied=raw.get("applied"), history=history)
