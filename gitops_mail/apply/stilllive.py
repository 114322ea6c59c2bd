"""The cheap answer to "is this revision already live, exactly as applied?".

Yes only when the revision is the one recorded as applied, no apply was
interrupted (no journal, no unproven mark), every file gitops-mail manages in
the config dir still has the bytes it installed, and every certificate
source file still has the bytes it had when that revision was last proven (a
renewal means no). Anything else, and the full transaction decides.

It imports nothing heavy (no formats, no cryptography), so re-applying the
live revision, which the daemon does after each of its own commits, costs a
fraction of a full apply. What it cannot see: a mode or owner changed by hand
(the full apply and ``status`` compare contents; a chmod is drift it repairs
on the next real change).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from gitops_mail.apply.store import Attempt, StateStore, Unproven
from gitops_mail.git import plumbing as gitplumbing
from gitops_mail.host import localfs, statedir
from gitops_mail.host.livefs import configdir as livefs
from gitops_mail.host.lock import state_lock
from gitops_mail.host.settings import HostSettings

SOURCES = "sources.json"


def reapply_if_live(
    settings: HostSettings,
    rev: str | None = None,
    *,
    wait: bool = True,
    on_wait: Callable[[], None] | None = None,
) -> str | None:
    """If ``rev`` is exactly what is live, record that and return its id; else None
    (and ``reconcile.reconcile`` decides)."""
    store = StateStore(settings.state_dir)
    live = livefs.LiveDir(settings.chasquid.config_dir, settings.state_dir)
    with state_lock(settings.state_dir, wait=wait, on_wait=on_wait):
        revision = gitplumbing.resolve_revision(settings.repo, rev or settings.branch)
        if not still_live(store, live, revision):
            return None
        started = datetime.now(UTC).isoformat(timespec="seconds")
        store.record(Attempt(revision, started, "unchanged", summary="no change"), applied=revision)
        return revision


def record_sources(state_dir: Path, paths: Iterable[str]) -> None:
    """Remember the bytes of the certificate source files a proven revision used."""
    digests = {path: _digest(Path(path)) for path in sorted(set(paths))}
    data = (json.dumps(digests, indent=1, sort_keys=True) + "\n").encode()
    localfs.atomic_write(state_dir / SOURCES, data, mode=statedir.FILE_MODE)


def still_live(store: StateStore, live: livefs.LiveDir, revision: str) -> bool:
    if store.load().applied != revision:
        return False
    if Unproven.of(live.state_dir).present() or live.journal_path.exists():
        return False
    drift = live.drift()
    return not drift.modified and not drift.missing and _sources_unchanged(live.state_dir)


def _sources_unchanged(state_dir: Path) -> bool:
    try:
        recorded = json.loads(localfs.read_own(state_dir / SOURCES))
    except (OSError, ValueError):
        return False
    return isinstance(recorded, dict) and all(
        _digest(Path(path)) == digest for path, digest in recorded.items()
    )


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
