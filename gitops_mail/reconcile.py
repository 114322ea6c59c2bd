"""``reconcile``: apply one revision to this host, the one path the CLI and the
daemon share. See ``transaction`` for the phases and their guarantees."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from gitops_mail import gitrepo, livefs, liveproof, preflight
from gitops_mail.certsource import CertMaterial, load_certificate
from gitops_mail.errors import GitopsMailError
from gitops_mail.hostconfig import HostSettings
from gitops_mail.lock import state_lock
from gitops_mail.plan import Action, Plan
from gitops_mail.render import render_tree
from gitops_mail.state import State
from gitops_mail.statestore import StateStore
from gitops_mail.transaction import (
    ApplyFailed,
    Outcome,
    Run,
    plan_against_live,
    read_desired,
    summary,
)


def reconcile(
    settings: HostSettings,
    rev: str | None = None,
    *,
    dry_run: bool = False,
    wait: bool = True,
    on_wait: Callable[[], None] | None = None,
) -> Outcome:
    store = StateStore(settings.state_dir)
    live = livefs.LiveDir(settings.chasquid.config_dir, settings.state_dir)
    with state_lock(settings.state_dir, wait=wait, on_wait=on_wait):
        live.recover()
        revision = gitrepo.resolve_revision(settings.repo, rev or settings.branch)
        return _Apply(settings, live, Run(store, revision, dry_run=dry_run)).run()


class _Apply:
    def __init__(self, settings: HostSettings, live: livefs.LiveDir, run: Run) -> None:
        self.settings, self.live, self.r = settings, live, run

    def run(self) -> Outcome:
        state, tree = self._desired()
        plan = plan_against_live(self.settings, self.r.store, state)
        with self.r.phases.timed("stage"):
            staged = self.live.stage(tree)
        swapped = False
        try:
            if not staged.changes:
                return self._unchanged(plan)
            action = action_for(staged.changes, self.settings.chasquid.config_dir)
            self._preflight(staged)
            if self.r.dry_run:
                return self._outcome(
                    "dry-run",
                    action,
                    plan,
                    staged,
                    f"would apply {self.r.revision[:7]} ({summary(plan)}); pre-flight passed",
                )
            swapped = True
            return self._swap_and_prove(staged, state, plan, action)
        finally:
            if not swapped:
                self.live.discard(staged)

    def _desired(self) -> tuple[State, livefs.DesiredTree]:
        try:
            state = read_desired(self.settings, self.r.revision, self.r.phases)
            with self.r.phases.timed("render"):
                return state, render_tree(state, _certificates(state))
        except GitopsMailError as exc:
            self.r.record("invalid", reason=exc.message)
            raise

    def _outcome(
        self, result: str, action: Action, plan: Plan, staged: livefs.Staged | None, message: str
    ) -> Outcome:
        changes = staged.changes if staged is not None else ()
        return Outcome(self.r.revision, result, action, plan, changes, self.r.phases.ms, message)

    def _unchanged(self, plan: Plan) -> Outcome:
        self.r.record("unchanged", summary="no change", applied=True)
        return self._outcome(
            "unchanged",
            Action.NONE,
            plan,
            None,
            f"{self.r.revision[:7]} is already live; nothing to do",
        )

    def _preflight(self, staged: livefs.Staged) -> None:
        chasquid = self.settings.chasquid
        with self.r.phases.timed("preflight"):
            result = preflight.preflight(staged.path, binary=chasquid.binary, util=chasquid.util)
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
        phases = self.r.phases
        with deferred_signals():
            with phases.timed("swap"):
                checkpoint = self.live.swap(staged)
            failure = liveproof.act_and_probe(self.settings, action, state, plan, phases)
            if failure is not None:
                restored = liveproof.restore(self.settings, self.live, checkpoint, phases)
                self.r.record(
                    "failed",
                    reason=f"{failure}; {restored}",
                    summary=summary(plan),
                    action=action.label,
                )
                raise ApplyFailed(
                    f"revision {self.r.revision[:7]} failed after it went live: {failure}. "
                    f"{restored[0].upper()}{restored[1:]}.",
                    "`gitops-mail history` shows the details; fix it in a new commit",
                )
            self.live.cleanup(checkpoint)
            self.r.record("applied", summary=summary(plan), action=action.label, applied=True)
        did = _did(action, self.settings.chasquid.reload_strategy)
        return self._outcome(
            "applied",
            action,
            plan,
            staged,
            f"applied {self.r.revision[:7]}: {did}, probes ok",
        )


def _did(action: Action, reload_strategy: str) -> str:
    if action is Action.NONE:
        return "no restart needed"
    if action is Action.RELOAD and reload_strategy == "wait":
        return "picked up by chasquid's periodic reload"
    return "restarted chasquid"


def _certificates(state: State) -> dict[str, CertMaterial]:
    if state.manifest is None:
        return {}
    return {c.name: load_certificate(c) for c in state.manifest.certificates}


def action_for(changes: tuple[livefs.Change, ...], config_dir: Path) -> Action:
    """How chasquid 1.11 picks up these file changes (CHASQUID.md's reload table)."""
    return max((_file_action(c, config_dir) for c in changes), default=Action.NONE)


def _file_action(change: livefs.Change, config_dir: Path) -> Action:
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


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGTERM/SIGINT until the block ends (applied or restored), then act on them."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals; the daemon handles its own
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    old = {s: signal.signal(s, hold) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)
        if caught:
            signal.raise_signal(caught[0])
