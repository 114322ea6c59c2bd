"""What makes the daemon reconcile, and the one queue every trigger feeds.

Triggers: the watched repo's refs (inotify through watchdog: the branch's
loose ref and ``packed-refs``, which git replaces by lock-and-rename), the
certificate source files of the live manifest, a poll timer (``poll_interval``
± 10 %), and SIGUSR1 / ``gitops-mail reconcile-now`` (the daemon's main loop).

``Schedule`` is the coalescing queue, pure (the caller passes the time): any
number of pokes merge into one ``Job`` for the single worker, which reads the
branch tip when it runs, so a burst of pushes becomes one reconcile of the
newest tip. ``WorkQueue`` wraps it for threads. ``Backoff`` spaces the retries
of a pass that failed for a transient reason.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from gitops_mail.apply.stilllive import SOURCES

POLL_JITTER = 0.1  # poll_interval ± 10 %
# A renewal writes several files (certbot: archive files, then each live link): the pass
# waits until none has been written for this long (each write restarts the wait).
CERT_SETTLE_S = 0.2
_WRITES: list[type[FileSystemEvent]] = [  # never opens and reads: a pass reads refs itself
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    FileClosedEvent,
]


@dataclass(frozen=True)
class Job:
    """One pass for the worker: why, and whether to fetch first and force a reconcile."""

    reasons: tuple[str, ...]
    force: bool = False  # reconcile even if the tip is live or failed before
    fetch: bool = False  # fetch from the remote first (poll mode)


class Schedule:
    """Pending work, merged: at most one job is ever waiting.

    A poke with ``settle`` waits that long after the last such poke (files
    still being written); any other poke makes the job due at once.
    """

    def __init__(self) -> None:
        self.due: float | None = None
        self._settling = False
        self._reasons: dict[str, None] = {}
        self._force = self._fetch = False

    def poke(
        self,
        reason: str,
        now: float,
        *,
        force: bool = False,
        fetch: bool = False,
        settle: float = 0,
    ) -> None:
        self._merge((reason,), force, fetch)
        if not settle:
            self.due = now if self.due is None else min(self.due, now)
            self._settling = False
        elif self.due is None or self._settling:
            self.due = max(self.due or 0.0, now + settle)
            self._settling = True

    def retry(self, job: Job, now: float, delay: float) -> None:
        """Put ``job`` back, due after ``delay`` unless other work is due sooner."""
        self._merge(job.reasons, job.force, job.fetch)
        at = now + delay
        self.due = at if self.due is None or self._settling else min(self.due, at)
        self._settling = False

    def take(self, now: float) -> Job | None:
        """The merged job if it is due, and nothing pending after it."""
        if self.due is None or self.due > now:
            return None
        job = Job(tuple(self._reasons), self._force, self._fetch)
        self.due, self._settling, self._reasons = None, False, {}
        self._force = self._fetch = False
        return job

    def _merge(self, reasons: Iterable[str], force: bool, fetch: bool) -> None:
        self._reasons.update(dict.fromkeys(reasons))
        self._force |= force
        self._fetch |= fetch


class WorkQueue:
    """A ``Schedule`` shared by the triggers' threads and the one worker."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._schedule = Schedule()
        self._clock = clock
        self._cond = threading.Condition()
        self._closed = False

    def poke(
        self, reason: str, *, force: bool = False, fetch: bool = False, settle: float = 0
    ) -> None:
        with self._cond:
            self._schedule.poke(reason, self._clock(), force=force, fetch=fetch, settle=settle)
            self._cond.notify()

    def retry(self, job: Job, delay: float) -> None:
        with self._cond:
            self._schedule.retry(job, self._clock(), delay)
            self._cond.notify()

    @property
    def pending(self) -> bool:
        with self._cond:
            return self._schedule.due is not None

    def close(self) -> None:
        """Wake the worker for good: ``take`` returns None from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self) -> Job | None:
        """Block until a job is due (and return it) or the queue is closed (None)."""
        with self._cond:
            while not self._closed:
                now = self._clock()
                job = self._schedule.take(now)
                if job is not None:
                    return job
                due = self._schedule.due
                self._cond.wait(None if due is None else max(0.0, due - now))
            return None


@dataclass(frozen=True)
class Backoff:
    """Exponential delays with jitter: 1 s, 2 s, 4 s ... 5 min, each ± ``jitter``."""

    initial: float = 1.0
    maximum: float = 300.0
    jitter: float = 0.2

    def delay(self, failures: int, rng: random.Random) -> float:
        """The wait after the ``failures``-th failure in a row (1 for the first)."""
        base = min(self.maximum, self.initial * 2.0 ** min(max(failures, 1) - 1, 32))
        return min(self.maximum, base * rng.uniform(1 - self.jitter, 1 + self.jitter))


def poll_delay(interval: float, rng: random.Random) -> float:
    """``interval`` ± 10 %, so that hosts polling one remote spread out."""
    return interval * rng.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)


class Poller:
    """A thread poking the queue every ``poll_delay``: fetch (poll mode) or just look."""

    def __init__(
        self, queue: WorkQueue, interval: float, *, fetch: bool, rng: random.Random
    ) -> None:
        self.queue, self.interval, self.fetch, self.rng = queue, interval, fetch, rng
        self.next_at: float | None = None  # wall-clock time of the next poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            delay = poll_delay(self.interval, self.rng)
            self.next_at = time.time() + delay
            if self._stop.wait(delay):
                return
            self.queue.poke("poll", fetch=self.fetch)


class _Matching(FileSystemEventHandler):
    """Pokes the queue when an event's path (a rename's target) is one of ``paths``."""

    def __init__(self, paths: Iterable[Path], poke: Callable[[str], None]) -> None:
        self.paths = {os.path.normpath(p) for p in paths}
        self.poke = poke

    def on_any_event(self, event: FileSystemEvent) -> None:
        for raw in (event.src_path, event.dest_path):
            path = os.path.normpath(os.fsdecode(raw)) if raw else ""
            if path in self.paths:
                self.poke(path)
                return


class Watchers:
    """inotify watches on the repo's refs and on the certificate sources."""

    def __init__(self, queue: WorkQueue, observer: BaseObserver | None = None) -> None:
        self.queue = queue
        self.observer = observer or Observer()
        self._certs: list[ObservedWatch] = []
        self.cert_files: tuple[Path, ...] = ()

    def start(self) -> None:
        self.observer.start()

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)

    def watch_refs(self, git_dir: Path, branch: str) -> None:
        """The branch's loose ref (any depth below refs/heads) and packed-refs."""
        ref, packed = git_dir / "refs" / "heads" / branch, git_dir / "packed-refs"
        handler = _Matching((ref, packed), lambda path: self.queue.poke("ref"))
        self.observer.schedule(handler, git_dir, event_filter=_WRITES)
        self.observer.schedule(
            handler, git_dir / "refs" / "heads", recursive=True, event_filter=_WRITES
        )

    def watch_certs(self, files: Iterable[Path]) -> list[Path]:
        """Watch these certificate files (instead of others); the directories that could
        not be watched."""
        wanted = tuple(sorted(set(files)))
        if wanted == self.cert_files:
            return []
        for watch in self._certs:
            self.observer.unschedule(watch)
        self._certs, self.cert_files, unwatched = [], wanted, []
        handler = _Matching(
            self.cert_files,
            lambda path: self.queue.poke("certificate", settle=CERT_SETTLE_S),
        )
        for directory in sorted({f.parent for f in self.cert_files}):
            try:
                self._certs.append(self.observer.schedule(handler, directory, event_filter=_WRITES))
            except OSError:
                unwatched.append(directory)
        return unwatched


def proven_sources(state_dir: Path) -> list[Path]:
    """The certificate source files the live revision was proven with (``stilllive``)."""
    try:
        recorded = json.loads((state_dir / SOURCES).read_bytes())
    except (OSError, ValueError):
        return []
    return [Path(p) for p in recorded] if isinstance(recorded, dict) else []


def git_dir(repo: Path) -> Path:
    """Where a repository keeps its refs: ``repo`` if bare, else its ``.git``."""
    dot_git = repo / ".git"
    if dot_git.is_file():  # a linked work tree or submodule: "gitdir: PATH"
        text = dot_git.read_text().strip()
        if text.startswith("gitdir:"):
            return (repo / text.removeprefix("gitdir:").strip()).resolve()
    return dot_git if dot_git.is_dir() else repo
