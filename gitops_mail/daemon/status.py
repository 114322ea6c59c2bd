"""The daemon's two files in ``state_dir``, and how ``status`` shows them.

- ``daemon.pid``: ``flock``-ed for as long as a daemon runs and holding its
  pid, so a second daemon is refused and a pid left by a killed one is never
  trusted (the lock dies with its process). 0600, never through a symlink.
- ``daemon.json``: what the daemon is doing (watched repo, tip seen, pending
  work, next poll, last error and back-off, the last pass and commit-back), replaced
  atomically on every change; 0640 with the state dir's group, which the push
  hooks share when ``hooks install`` made it the repo's (``host.statedir``).
  No secret in it. Read only when root (or the user we run as) wrote it.

Light on purpose: ``gitops-mail status`` and ``reconcile-now`` import this,
never the daemon and its transaction.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitops_mail.core.report import one_line
from gitops_mail.errors import GitopsMailError
from gitops_mail.host import localfs, statedir
from gitops_mail.host.lock import held, open_lock_file
from gitops_mail.host.settings import HostSettings

STATUS_FILE = "daemon.json"
PID_FILE = "daemon.pid"


@dataclass(frozen=True)
class PassReport:
    """One pass. ``result``: applied, unchanged, failed, invalid, superseded (a newer tip
    ended its probe wait), skipped or error."""

    revision: str | None
    result: str
    message: str
    forced: bool
    started: float  # Unix time
    duration_ms: float


def now_iso(moment: float | None = None) -> str:
    when = datetime.now(UTC) if moment is None else datetime.fromtimestamp(moment, UTC)
    return when.isoformat(timespec="seconds")


class StatusFile:
    """``state_dir/daemon.json``, written by the daemon; ``update`` never raises."""

    def __init__(self, state_dir: Path, **fixed: Any) -> None:
        self.path = state_dir / STATUS_FILE
        self.doc: dict[str, Any] = {"pid": os.getpid(), "started_at": now_iso(), **fixed}
        self.error: str | None = None  # the last write error, if any
        self._lock = threading.Lock()

    @classmethod
    def of(cls, settings: HostSettings) -> StatusFile:
        return cls(
            settings.state_dir,
            repo=str(settings.repo),
            branch=settings.branch,
            remote=settings.remote,
            passes=0,
        )

    def update(self, **fields: Any) -> None:
        with self._lock:
            self.doc.update(fields, updated_at=now_iso())
            data = (json.dumps(self.doc, indent=1) + "\n").encode()
            try:
                statedir.write_shared(self.path, data)
                self.error = None
            except GitopsMailError as exc:  # a full disk must not stop the daemon
                self.error = exc.message


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """What a daemon last wrote to ``daemon.json``; None when there is nothing readable."""
    try:
        doc = json.loads(localfs.read_own(state_dir / STATUS_FILE))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def status_lines(state_dir: Path) -> list[str]:
    """``daemon:`` lines for ``gitops-mail status``: whether it runs and what it does."""
    pid, doc = daemon_pid(state_dir), read_status(state_dir) or {}
    if pid is None:
        return ["daemon:   not running" + (f" (last seen {doc['updated_at']})" if doc else "")]
    mode = "polling " + str(doc.get("remote")) if doc.get("remote") else "watching"
    lines = [f"daemon:   running (pid {pid}), {mode} {doc.get('repo')} {doc.get('branch')}"]
    tip = str(doc.get("tip") or "")[:7] or "(not read yet)"
    pending = "; work pending" if doc.get("pending") or doc.get("state") == "reconciling" else ""
    lines.append(f"daemon:   {doc.get('state', '?')}, tip seen {tip}{pending}")
    last = doc.get("last_pass") or {}
    if last:
        revision = str(last.get("revision") or "?")[:7]
        message = one_line(str(last.get("message")), revision)  # history keeps it whole
        lines.append(f"daemon:   last pass {pass_text(str(last.get('result')), revision, message)}")
    if doc.get("last_error"):
        retry = f"; retry at {doc.get('next_retry')}" if doc.get("next_retry") else ""
        error = one_line(str(doc["last_error"]), str(doc.get("tip") or "?"))
        lines.append(f"daemon:   error: {error}{retry}")
    if doc.get("commit_back"):
        lines.append(f"daemon:   last commit-back {doc['commit_back']}")
    if doc.get("next_poll"):
        lines.append(f"daemon:   next poll {doc['next_poll']}")
    return lines + _check_lines(doc.get("check"))


def _check_lines(check: Any) -> list[str]:
    """The daemon's last live check (``gitops-mail check``), as it changed last."""
    if not isinstance(check, dict):
        return []
    errors, warnings = check.get("errors", 0), check.get("warnings", 0)
    verdict = "all good" if not errors and not warnings else f"{errors} errors, {warnings} warnings"
    lines = [f"check:    {verdict} (since {check.get('since')})"]
    return lines + [f"check:    {problem}" for problem in check.get("problems", [])]


def pass_text(result: str, revision: str, message: str) -> str:
    """How a pass ended, saying the result and the revision once: ``applied 1a2b3c4: ...``
    (a message that already starts so stays as it is; one that starts with the
    revision gets the result in front)."""
    if message.startswith(f"{result} {revision}"):
        return message
    if message.startswith(revision):
        return f"{result}: {message}"
    return f"{result} {revision}: {message}"


def status_line(revision: str | None, result: str, message: str, live: str | None) -> str:
    """One line for systemd's STATUS=: what is live and how the last pass ended."""
    rev = revision[:7] if revision else "?"
    text = f"live {live[:7] if live else '(none)'}; last pass: {rev} {result}"
    return text if result != "error" else f"{text}: {message}"[:200]


@contextlib.contextmanager
def hold_pid_file(state_dir: Path) -> Iterator[None]:
    """``state_dir/daemon.pid``, locked while the block runs and removed after it."""
    path = state_dir / PID_FILE
    statedir.prepare(state_dir)
    fd = open_lock_file(path, "the daemon's pid file")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GitopsMailError(
                f"a gitops-mail daemon already runs for {state_dir} (pid {_read_pid(fd)})",
                "stop it first (systemctl stop gitops-mail): one daemon per state dir",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # while still holding the lock
    finally:
        os.close(fd)


def daemon_pid(state_dir: Path) -> int | None:
    """The pid of the daemon running for ``state_dir``; None when no process holds the lock
    (a pid file nobody holds was left by a killed daemon)."""
    path = state_dir / PID_FILE
    if not held(path):
        return None
    try:
        return _pid(localfs.read_own(path))
    except OSError:
        return None  # it ended just now


def _read_pid(fd: int) -> int | None:
    return _pid(os.pread(fd, 32, 0))


def _pid(data: bytes) -> int | None:
    text = data.decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
