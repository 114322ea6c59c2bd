"""``reconcile``: apply one revision to this host, the one path the CLI and the
daemon share. See ``transaction`` for the phases and their guarantees."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from gitops_mail.apply import certificates as applycerts
from gitops_mail.apply import stilllive
from gitops_mail.apply.store import StateStore, Unproven
from gitops_mail.apply.transaction import (
    ApplyFailed,
    HostFault,
    Outcome,
    PhaseReport,
    Phases,
    Run,
    deferred_signals,
    plan_against_live,
    read_desired,
    summary,
    terminable,
)
from gitops_mail.apply.transaction import Superseded as SupersededError
from gitops_mail.core.plan.model import Action, Plan, decide
from gitops_mail.core.render import render_tree
from gitops_mail.core.state import State
from gitops_mail.core.tree import DesiredTree
from gitops_mail.errors import GitopsMailError
from gitops_mail.git import plumbing as gitplumbing
from gitops_mail.host import preflight
from gitops_mail.host.dkim import store as dkimstore
from gitops_mail.host.livefs import configdir as livefs
from gitops_mail.host.livefs import scan as livescan
from gitops_mail.host.lock import state_lock
from gitops_mail.host.settings import HostSettings

if TYPE_CHECKING:
    from gitops_mail.apply.liveproof import Failure, Newer, Restored


def reconcile(
    settings: HostSettings,
    rev: str | None = None,
    *,
    dry_run: bool = False,
    wait: bool = True,
    on_wait: Callable[[], None] | None = None,
    newer: Newer | None = None,
    on_phase: PhaseReport | None = None,
    live_revision: bool = False,
) -> Outcome:
    """Apply ``rev`` (the branch tip by default), prove it or restore the old state.

    ``newer`` (the daemon's) names a revision that supersedes ``rev``: asked
    while the probes wait, it ends the wait (``Superseded``). ``on_phase``
    hears of each phase (name, ms, ok or error) as it ends. ``live_revision``:
    apply the revision recorded as live, read under the lock (a renewal: the
    certificates on disk now, whatever the tip), instead of ``rev``.
    """
    store = StateStore(settings.state_dir)
    live = livefs.LiveDir(settings.chasquid.config_dir, settings.state_dir)
    with terminable(), state_lock(settings.state_dir, wait=wait, on_wait=on_wait):
        recovered = live.recover()
        if recovered is not None:  # an apply died mid-swap or mid-restore: history says so
            interrupted = Unproven.of(settings.state_dir).revision() or "unknown"
            Run(store, interrupted).record("interrupted", reason=recovered)
        if live_revision:
            revision = _live(store)
        else:
            revision = gitplumbing.resolve_revision(settings.repo, rev or settings.branch)
        run = Run(store, revision, dry_run=dry_run, phases=Phases(report=on_phase))
        return _Apply(settings, live, run, newer).run()


class _Apply:
    def __init__(
        self, settings: HostSettings, live: livefs.LiveDir, run: Run, newer: Newer | None
    ) -> None:
        self.settings, self.live, self.r, self.newer = settings, live, run, newer
        self.unproven = Unproven.of(settings.state_dir)
        self.sources: list[str] = []
        self.certs = applycerts.Chosen({}, (), ())  # read for the revision: renewals are planned

    def run(self) -> Outcome:
        state, tree = self._desired()
        try:
            return self._apply(state, tree)
        except (ApplyFailed, HostFault, SupersededError):
            raise  # already recorded
        except GitopsMailError as exc:  # staging, swapping, restarting: say why in history
            with contextlib.suppress(GitopsMailError):  # the state dir may be the cause
                self.r.record("failed", reason=exc.message)
            raise

    def _apply(self, state: State, tree: DesiredTree) -> Outcome:
        unproven = self.unproven.present()  # the last apply died between swap and proof
        with self.r.phases.timed("compare"):
            if not unproven and not self.live.changes(tree):
                return self._unchanged()
        plan = plan_against_live(self.settings, self.r.store, state, self.certs.certs)
        with self.r.phases.timed("stage"):
            staged = self.live.stage(tree)
        try:
            needed = action_for(staged.changes, self.settings.chasquid.config_dir)
            strategy = self.settings.chasquid.reload_strategy
            decision = decide(plan, needed, strategy, interrupted=unproven)
            plan, action = replace(plan, decision=decision), decision.action
            self._preflight(staged)
            if self.r.dry_run:
                return self._outcome(
                    "dry-run",
                    action,
                    plan,
                    staged,
                    f"would apply {self.r.revision[:7]} ({summary(plan)}); pre-flight passed",
                )
            return self._swap_and_prove(staged, state, plan, action)
        finally:
            self.live.discard(staged)  # also what a swap left of it, used or failed

    def _desired(self) -> tuple[State, DesiredTree]:
        try:
            state = read_desired(self.settings, self.r.revision, self.r.phases)
            with self.r.phases.timed("render"):
                self.certs = applycerts.choose(self.settings, state, record=not self.r.dry_run)
                keys = dkimstore.signing_keys(
                    self.settings.state_dir, state.manifest, create=not self.r.dry_run
                )
                self.sources = [*self.certs.sources, *keys.files]  # an imported key too
                tree = render_tree(
                    state, self.certs.certs, policy=self.settings.policy, dkim=keys.pems
                )
                return state, tree
        except GitopsMailError as exc:
            self.r.record("invalid", reason=exc.message)
            raise

    def _outcome(
        self, result: str, action: Action, plan: Plan, staged: livefs.Staged | None, message: str
    ) -> Outcome:
        changes = staged.changes if staged is not None else ()
        told = "\n".join([message, *self.certs.warnings])  # a refused certificate: a warning
        phases, notes = self.r.phases.ms, self.certs.notes
        return Outcome(self.r.revision, result, action, plan, changes, phases, told, notes)

    def _unchanged(self) -> Outcome:
        self.r.record("unchanged", reason=self._refused(), summary="no change", applied=True)
        self._remember_sources()
        return self._outcome(
            "unchanged",
            Action.NONE,
            Plan(self.r.revision[:7], self.r.revision[:7], (), ()),
            None,
            f"{self.r.revision[:7]} is already live; nothing to do",
        )

    def _refused(self) -> str:
        """The refused certificates, for history (the live ones stayed served)."""
        return "; ".join(n.refused for n in self.certs.notes if n.refused)

    def _remember_sources(self) -> None:
        if not self.r.dry_run:
            stilllive.record_sources(self.settings.state_dir, self.sources)

    def _preflight(self, staged: livefs.Staged) -> None:
        chasquid = self.settings.chasquid
        with self.r.phases.timed("preflight"):
            result = preflight.preflight(
                staged.path,
                binary=chasquid.binary,
                util=chasquid.util,
                domains=_changed_users(staged.changes),
                user=chasquid.user,
            )
        if result.ok:
            return
        reason = "chasquid's pre-flight refused it: " + "; ".join(result.errors)
        self.r.record("failed", reason=reason)
        raise ApplyFailed(
            f"revision {self.r.revision[:7]} was not applied: {reason}; nothing was changed",
            "fix the problem in a new commit, or `git revert` the bad one",
        )

    def _swap_and_prove(
        self, staged: livefs.Staged, state: State, plan: Plan, action: Action
    ) -> Outcome:
        from gitops_mail.apply import (  # noqa: PLC0415 - SMTP/TLS code only when a swap happens
            liveproof,
        )

        phases = self.r.phases
        done = action.label
        with deferred_signals():
            self.unproven.mark(self.r.revision)
            with phases.timed("swap"):
                checkpoint = self.live.swap(staged)
            failure = liveproof.act_and_probe(
                self.settings, action, state, plan, phases, newer=self.newer
            )
            if failure is not None:
                restored = liveproof.restore(self.settings, self.live, checkpoint, phases)
                if restored.ok:
                    self.unproven.clear()
                self._not_proven(failure, restored, summary(plan), done)
            self.live.cleanup(checkpoint)
            why = self._refused()
            self.r.record("applied", reason=why, summary=summary(plan), action=done, applied=True)
            self._remember_sources()
            self.unproven.clear()
        return self._outcome(
            "applied",
            action,
            plan,
            staged,
            f"applied {self.r.revision[:7]}: {action.done}, probes ok",
        )

    def _not_proven(
        self, failure: Failure, restored: Restored, plan_summary: str, done: str
    ) -> NoReturn:
        """Record and raise what a failure after the swap means (the old tree is back).

        Superseded: a newer revision cut the wait short. A host fault (retried):
        the previous configuration does not come back either, though it was
        proven here before or the restart itself failed, so the revision cannot
        be blamed. Otherwise the revision failed, for good: retrying only when
        the server is down anyway never makes a working server flap.
        """
        rev, said = self.r.revision[:7], restored.sentence
        told = f"{said[0].upper()}{said[1:]}"
        reason = f"{failure.text}; {said}"
        if failure.newer is not None:
            self._superseded(failure, failure.newer, said, summary=plan_summary, done=done)
        blamed = restored.ok or not (failure.restart or self._proven_before())
        result = "failed" if blamed else "error"
        self.r.record(result, reason=reason, summary=plan_summary, action=done)
        if not blamed:
            raise HostFault(
                f"revision {rev} could not be proven: {failure.text}. {told}: the fault is "
                "this host's, not the revision's",
                "fix chasquid or its service (see `gitops-mail status` and chasquid's log); "
                "the daemon tries again with back-off, `gitops-mail apply` tries now",
            )
        raise ApplyFailed(
            f"revision {rev} failed after it went live: {failure.text}. {told}.",
            "`gitops-mail history` shows the details; fix it in a new commit",
        )

    def _superseded(
        self, failure: Failure, newer: str, said: str, *, summary: str, done: str
    ) -> NoReturn:
        why = (
            f"superseded by {newer[:7]} while its probes waited; never proven "
            f"({failure.text}); {said}"
        )
        self.r.record("superseded", reason=why, summary=summary, action=done)
        raise SupersededError(
            f"revision {self.r.revision[:7]} was not proven: {newer[:7]} arrived while its "
            f"probes waited ({failure.text}). {said[0].upper()}{said[1:]}.",
            f"{newer[:7]} is applied next",
            newer,
        )

    def _proven_before(self) -> bool:
        """Some revision was proven on this host: the previous configuration is one."""
        with contextlib.suppress(GitopsMailError):
            return self.r.store.load().applied is not None
        return False


def _changed_users(changes: tuple[livescan.Change, ...]) -> list[str]:
    """Domains whose users file this apply writes: the ones check-userdb must see."""
    return sorted(
        {
            c.path.split("/")[1]
            for c in changes
            if c.op in ("create", "update")
            and c.path.startswith("domains/")
            and c.path.endswith("/users")
        }
    )


def _live(store: StateStore) -> str:
    applied = store.load().applied
    if applied is None:
        raise GitopsMailError(
            "no revision is live on this host yet: there is no certificate to renew",
            "apply one first (gitops-mail apply); it installs the certificates",
        )
    return applied


def action_for(changes: tuple[livescan.Change, ...], config_dir: Path) -> Action:
    """How chasquid 1.11 picks up these file changes (CHASQUID.md's reload table)."""
    if _removes_a_domain(changes, config_dir):
        return Action.RESTART  # a removed domain stays local in chasquid until a restart
    return max((_file_action(c, config_dir) for c in changes), default=Action.NONE)


def _removes_a_domain(changes: tuple[livescan.Change, ...], config_dir: Path) -> bool:
    removed = {c.path for c in changes if c.op == "remove"}
    for domain in {p.split("/")[1] for p in removed if p.startswith("domains/")}:
        live = config_dir / "domains" / domain
        files = [f"domains/{domain}/{f.name}" for f in live.iterdir()] if live.is_dir() else []
        if all(f in removed for f in files):
            return True
    return False


def _file_action(change: livescan.Change, config_dir: Path) -> Action:
    parts = change.path.split("/")
    if change.op == "chmod" or parts[0] == "hooks":
        return Action.NONE
    if parts[0] != "domains" or len(parts) != 3:
        return Action.RESTART  # chasquid.conf, certificates: read at start only
    if not (config_dir / "domains" / parts[1]).is_dir():
        return Action.RESTART  # a new domain
    if parts[2] == "users" and change.op in ("create", "remove"):
        return Action.RESTART  # users files are found at start only, and never dropped
    return Action.NONE if parts[2] == "dkim_selector" else Action.RELOAD
