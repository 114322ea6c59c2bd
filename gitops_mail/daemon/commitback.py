"""Commit back what the daemon generates: the DNS zones of the applied revision.

``commit_back`` runs after a revision is live. It renders the zones from that
revision's state, compares them with the files of the branch tip, and commits
only when bytes differ, as the bot identity, with a message that depends only
on what changed and on the revision (``[skip ci]`` in it, so CI does not run
for it). Rendering is deterministic, so every host that applied the same
revision writes the same bytes, and the second one finds nothing to do.

Nothing is ever forced. When the branch moved meanwhile (another clone
pushed) or, in poll mode, the remote refused the push, the new tip is read
(fetched) and the zones are rebuilt on it, up to ``RETRIES`` more times with
backoff; but only while the tip has the same zone inputs (manifest and
chasquid.conf) as the applied revision. A tip that changed them is
``superseded``: its own reconcile will render and commit its zones.

``is_own_commit`` tells the daemon which tips are its own: commits by the bot
that change only generated paths. Such a commit changes nothing chasquid
reads, so it needs no apply and no restart. Anyone could forge the bot's name,
but a forged commit is recognised only when it too touches nothing but
``dns/*.zone``, which chasquid never reads.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from gitops_mail.core.dns.zone import (
    ZONE_DIR,
    ZONE_INPUTS,
    ZONE_SUFFIX,
    committed_keys,
    is_generated,
    is_zone_path,
    render_zones,
)
from gitops_mail.core.snapshot import Snapshot
from gitops_mail.core.state import State
from gitops_mail.errors import GitopsMailError
from gitops_mail.git import read as gitread
from gitops_mail.git import write as gitwrite
from gitops_mail.host.dkim import store as dkimstore
from gitops_mail.host.settings import HostSettings

BOT = ("gitops-mail", "gitops-mail@localhost")
RETRIES = 3  # after the first attempt, when the branch moved or the push was refused
BACKOFF_S = 1.0  # before the first retry; doubled for each one after it
SUBJECT_DOMAINS = 3  # named in the subject; more are counted

Result = Literal["unchanged", "committed", "superseded", "failed"]
Changes = Mapping[str, bytes | None]  # None: remove the path
Sleep = Callable[[float], None]

log = structlog.get_logger("gitops_mail.commitback")


@dataclass(frozen=True)
class CommitBack:
    """What ``commit_back`` did: ``commit`` is the new commit when ``committed``."""

    result: Result
    commit: str | None
    reason: str


def commit_back(
    settings: HostSettings,
    state: State,
    revision: str,
    *,
    author: tuple[str, str] = BOT,
    sleep: Sleep = time.sleep,
) -> CommitBack:
    """Commit the generated files of ``revision`` (whose state is ``state``) if they changed.

    Never raises for git failures: they come back as ``failed`` with the reason.
    """
    attempt = _Attempt(settings, state, revision, author)
    base = revision
    try:
        for number in range(1, RETRIES + 2):
            outcome = attempt.on(base)
            if isinstance(outcome, CommitBack):
                return outcome
            log.info("commitback.retry", revision=revision, tip=outcome.tip, attempt=number)
            if outcome.backoff and number <= RETRIES:
                sleep(_delay(number))
            base = outcome.tip
    except GitopsMailError as exc:
        return CommitBack("failed", None, exc.message)
    tries = RETRIES + 1
    return CommitBack("failed", None, f"the branch kept moving: gave up after {tries} attempts")


def is_own_commit(repo: Path, commit: str, *, author: tuple[str, str] = BOT) -> bool:
    """True when ``commit`` is the bot's and changes only generated paths (vs its first parent)."""
    parent = gitread.parent_revision(repo, commit)
    if parent is None or gitread.commit_author(repo, commit) != author:
        return False
    return all(is_zone_path(path) for path in gitread.changed_paths(repo, parent, commit))


def generated_changes(
    snapshot: Snapshot, artifacts: Mapping[str, bytes]
) -> dict[str, bytes | None]:
    """What to commit on ``snapshot`` so it holds ``artifacts``.

    Zone files this module once generated for domains no longer in the
    manifest are removed; zone files a person wrote (without the mark) stay.
    """
    changes: dict[str, bytes | None] = {
        path: data for path, data in artifacts.items() if snapshot.data(path) != data
    }
    for path, entry in snapshot.files.items():
        stale = path not in artifacts and is_zone_path(path)
        if stale and entry.is_regular and is_generated(entry.data):
            changes[path] = None
    return dict(sorted(changes.items()))


def commit_message(changes: Changes, revision: str) -> str:
    """``dns: update generated records for example.com [skip ci]`` and where they came from."""
    updated = [_domain(path) for path, data in changes.items() if data is not None]
    removed = [_domain(path) for path, data in changes.items() if data is None]
    parts = [f"update generated records for {_names(updated)}"] if updated else []
    parts += [f"remove generated records for {_names(removed)}"] if removed else []
    inputs = " and ".join(ZONE_INPUTS)
    body = f"Rendered by gitops-mail from {inputs} of {revision}."
    return f"dns: {'; '.join(parts)} [skip ci]\n\n{body}\n"


@dataclass(frozen=True)
class _Retry:
    """Try again on ``tip``; after a backoff when a remote refused us (it may be busy)."""

    tip: str
    backoff: bool


class _Attempt:
    """One try at committing the artifacts on a given tip of the branch."""

    def __init__(
        self, settings: HostSettings, state: State, revision: str, author: tuple[str, str]
    ) -> None:
        self.settings, self.state, self.revision, self.author = settings, state, revision, author
        # The keys other servers made come from the zone they committed (hosts: with a
        # dkim_selector each); this server's own from its key store.
        own = dkimstore.public_keys(settings.state_dir, state.manifest)
        self.artifacts = render_zones(state, {**committed_keys(state), **own})

    def on(self, base: str) -> CommitBack | _Retry:
        """The outcome, or the new tip to try again on."""
        repo, branch = self.settings.repo, self.settings.branch
        snapshot = gitread.read_revision(repo, base, limits=self.settings.limits)
        if _inputs(snapshot) != _inputs(self.state.snapshot):
            reason = f"{base[:7]} changed {' or '.join(ZONE_INPUTS)}: its own reconcile commits"
            return CommitBack("superseded", None, reason)
        changes = generated_changes(snapshot, self.artifacts)
        if not changes:
            return CommitBack("unchanged", None, f"{base[:7]} already holds the generated files")
        message = commit_message(changes, self.revision)
        try:
            commit = gitwrite.commit_files(repo, branch, base, changes, message, author=self.author)
        except gitwrite.BranchMoved as moved:
            if moved.current is None:
                return CommitBack("failed", None, moved.message)
            return _Retry(moved.current, backoff=False)  # read again at once: nobody is racing
        return self._publish(commit, list(changes))

    def _publish(self, commit: str, paths: list[str]) -> CommitBack | _Retry:
        remote, shown = self.settings.remote, ", ".join(paths)
        if remote is None:
            return CommitBack("committed", commit, f"committed {shown} as {commit[:7]}")
        try:
            gitwrite.push(self.settings.repo, remote, self.settings.branch)
        except gitwrite.PushRejected:
            tip = gitwrite.fetch(self.settings.repo, remote, self.settings.branch)
            return _Retry(tip, backoff=True)
        return CommitBack("committed", commit, f"committed {shown} as {commit[:7]} and pushed")


def _inputs(snapshot: Snapshot) -> tuple[bytes | None, ...]:
    return tuple(snapshot.data(path) for path in ZONE_INPUTS)


def _domain(path: str) -> str:
    return path.removeprefix(f"{ZONE_DIR}/").removesuffix(ZONE_SUFFIX)


def _names(domains: list[str]) -> str:
    if len(domains) > SUBJECT_DOMAINS:
        return f"{len(domains)} domains"
    return ", ".join(sorted(domains))


def _delay(retry: int) -> float:
    """Seconds before retry number ``retry`` (1, 2, ...): doubling, with jitter."""
    jitter = random.uniform(0.5, 1.0)  # noqa: S311 - spreads hosts apart, not a secret
    return BACKOFF_S * 2.0 ** (retry - 1) * jitter
