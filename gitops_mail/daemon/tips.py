"""The daemon's view of the branch: read the tip, notice a newer one, record what it skipped.

In poll mode the tip is fetched from the remote first. A newer tip asked for
while a reconcile's probes wait ends that wait (``Tips.newer``). Commits a new
tip leaves behind unapplied go to history as ``superseded``, oldest first,
once each. The daemon's own commits (commit-back) get no entry: one on top of
the live revision is recorded live as it is (``own_commit_on_live``).
"""

from __future__ import annotations

import time
from pathlib import Path

from gitops_mail import logs
from gitops_mail.apply import stilllive
from gitops_mail.apply.store import Attempt, StateStore
from gitops_mail.daemon.commitback import is_own_commit
from gitops_mail.daemon.status import now_iso
from gitops_mail.daemon.triggers import WorkQueue
from gitops_mail.errors import GitopsMailError
from gitops_mail.git import plumbing as gitplumbing
from gitops_mail.git import read as gitread
from gitops_mail.git import write as gitwrite
from gitops_mail.host.livefs import configdir as livefs
from gitops_mail.host.lock import state_lock
from gitops_mail.host.settings import HostSettings

SUPERSEDED_LIMIT = 100  # commits walked back from a new tip to record as superseded

log = logs.get_logger("gitops_mail.daemon")


class Tips:
    """Reads the branch tip for one host's settings; fetches it first in poll mode."""

    def __init__(self, settings: HostSettings, queue: WorkQueue) -> None:
        self.settings, self.queue = settings, queue
        self.polling = settings.remote is not None
        self._fetched_at = float("-inf")  # when a waiting probe last fetched (poll mode)

    def read(self, *, fetch: bool) -> str:
        settings = self.settings
        if fetch and settings.remote is not None:
            return gitwrite.fetch(settings.repo, settings.remote, settings.branch)
        return gitplumbing.resolve_revision(settings.repo, settings.branch)

    def newer(self, revision: str) -> str | None:
        """While ``revision``'s probes wait: the branch tip if a trigger came and moved it.

        Asked from the probe's threads; only reads the queue, and the branch
        when something is pending (in poll mode fetched, at most once a
        ``poll_interval``: a poll leaves the queue pending).
        """
        if not self.queue.pending:
            return None
        now = time.monotonic()
        fetch = self.polling and now >= self._fetched_at + self.settings.poll_interval
        try:
            if fetch:
                self._fetched_at = now
            tip = self.read(fetch=fetch)
        except GitopsMailError as exc:
            log.warning("probe.newer_unknown", revision=revision, error=exc.message)
            return None
        if tip == revision:
            return None
        log.info("probe.wait_cancelled", revision=revision, by=tip)
        return tip


def record_superseded(
    settings: HostSettings, store: StateStore, last: str | None, tip: str
) -> None:
    """History gets every commit between ``last`` (the last tip dealt with) and ``tip``
    that it has no entry for yet, except the daemon's own commits: one entry per
    commit, however often the daemon starts while the tip waits."""
    between = _between(settings.repo, last, tip) if last and last != tip else []
    if not between:
        return
    reason = f"{tip[:7]} was pushed before it was applied"
    with state_lock(settings.state_dir, wait=False):
        known = {a.revision for a in store.load().history}
        skipped = [r for r in between if r not in known and not is_own_commit(settings.repo, r)]
        for revision in reversed(skipped):  # oldest first: history is newest first
            store.record(Attempt(revision, now_iso(), "superseded", reason=reason))
    if skipped:
        log.info("pass.superseded", revisions=[r[:7] for r in skipped], by=tip)


def own_commit_on_live(settings: HostSettings, store: StateStore, tip: str) -> bool:
    """When ``tip`` is the daemon's own commit (generated files only) on top of the live
    revision, intact: record it as live, with no history entry, and say True.

    Such a commit changes nothing chasquid reads, so the live tree is already
    the tip's; the next pass finds it live.
    """
    with state_lock(settings.state_dir, wait=False):
        record = store.load()
        parent = gitread.parent_revision(settings.repo, tip)
        if record.applied is None or parent != record.applied:
            return False
        if not is_own_commit(settings.repo, tip):
            return False
        live = livefs.LiveDir(settings.chasquid.config_dir, settings.state_dir)
        if not stilllive.still_live(store, live, record.applied):
            return False
        store.advance(tip)
    log.info("pass.own_commit", revision=tip[:7], live=parent[:7])
    return True


def _between(repo: Path, old: str, new: str) -> list[str]:
    """First-parent commits after ``old`` up to ``new`` (excluded), newest first;
    none unless ``new`` descends from ``old``."""
    revision = gitread.parent_revision(repo, new)
    if revision == old or gitread.merge_base(repo, old, new) != old:
        return []  # one push, one commit; or history was rewritten: nothing superseded
    found: list[str] = []
    while revision is not None and revision != old and len(found) < SUPERSEDED_LIMIT:
        found.append(revision)
        revision = gitread.parent_revision(repo, revision)
    return found
