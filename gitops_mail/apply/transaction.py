"""The apply transaction: one revision made live, proven, or the old state restored.

    lock -> read + validate -> render + certificates -> stage -> pre-flight
         -> checkpoint + swap -> restart (as needed) -> probe
         -> on failure after the swap: restore, restart, probe again

Modelled on certbot's checkpoint / config_test / restart / recovery routine.
Validation judges the revision against this host's policy (``settings.policy``):
a revision that asks the host for more than it allows is refused before
anything is read from the host or changed on it.
Nothing before the swap touches the live config dir, so an error there loses
nothing; after the swap, every failure and SIGTERM/SIGINT ends in the new
state proven or the old state restored, never half.

Signals: before the swap SIGTERM unwinds like Ctrl-C (a pre-flight chasquid is
stopped, the staging dir removed) and the process then ends by it; from the
swap until the outcome is recorded SIGTERM and SIGINT wait (``deferred_signals``).
A crash (SIGKILL, power loss) after the swap and before the proof leaves the
``Unproven`` mark: the next apply restarts and probes even if the tree is
already the one it wants.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType

from gitops_mail.apply.store import Attempt, StateStore
from gitops_mail.core.certs import CertMaterial, CertNote
from gitops_mail.core.checks.validate import validate
from gitops_mail.core.plan.certs import facts_of, with_renewals
from gitops_mail.core.plan.make import make_plan
from gitops_mail.core.plan.model import Action, Plan
from gitops_mail.core.problems import has_errors
from gitops_mail.core.state import State, load_state
from gitops_mail.core.words import counted
from gitops_mail.errors import GitopsMailError, InvalidConfig
from gitops_mail.git import read as gitread
from gitops_mail.host import settings as hostsettings
from gitops_mail.host.certs import installed
from gitops_mail.host.livefs import scan as livescan
from gitops_mail.host.settings import HostSettings


class ApplyFailed(GitopsMailError):
    """The new state did not come up; the previous one was restored."""


class Superseded(GitopsMailError):
    """A newer revision arrived while this one's probes waited: the wait was cancelled,
    the previous state restored, and the newer revision is to be applied next."""

    def __init__(self, message: str, hint: str, newer: str) -> None:
        super().__init__(message, hint)
        self.newer = newer


class HostFault(GitopsMailError):
    """The new state did not come up and the previous one does not either: the fault is
    the host's (service manager, chasquid, ports), not the revision's; worth a retry."""


PhaseReport = Callable[[str, float, str], None]  # phase name, duration in ms, "ok" or "error"


@dataclass
class Phases:
    """Wall time per phase, for history and benchmarks; ``report`` hears of each
    phase as it ends (the daemon logs one event per phase)."""

    ms: dict[str, float] = field(default_factory=dict)
    report: PhaseReport | None = None

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        result = "error"
        try:
            yield
            result = "ok"
        finally:
            self.ms[name] = round((time.perf_counter() - start) * 1000, 1)
            if self.report is not None:
                self.report(name, self.ms[name], result)

    @property
    def total(self) -> float:
        return round(sum(self.ms.values()), 1)


@dataclass(frozen=True)
class Outcome:
    revision: str
    result: str  # applied | unchanged | dry-run
    action: Action
    plan: Plan
    changes: tuple[livescan.Change, ...]
    phases: dict[str, float]
    message: str
    # each certificate entry: the one served before and now, or why the source's was refused
    certificates: tuple[CertNote, ...] = ()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_desired(settings: HostSettings, rev: str, phases: Phases) -> State:
    with phases.timed("read"):
        snapshot = gitread.read_revision(settings.repo, rev, limits=settings.limits)
        state = hostsettings.view(settings, load_state(snapshot))
    with phases.timed("validate"):
        problems = validate(state, policy=settings.policy)
    if has_errors(problems):
        errors = [p for p in problems if p.is_error]
        count = counted(len(errors), "error")
        raise InvalidConfig(
            f"revision {snapshot.short} is invalid ({count}); nothing was changed:\n"
            + "\n".join(p.format() for p in errors),
            "fix the problems in a new commit, or `git revert` the bad one",
        )
    return state


@dataclass
class Run:
    """One attempt at one revision: where to record it and how long each phase took."""

    store: StateStore
    revision: str
    dry_run: bool = False
    started: str = field(default_factory=now)
    phases: Phases = field(default_factory=Phases)

    def record(
        self,
        result: str,
        *,
        reason: str = "",
        summary: str = "",
        action: str = "none",
        applied: bool = False,
    ) -> None:
        if self.dry_run:
            return
        attempt = Attempt(
            self.revision,
            self.started,
            result,
            reason=whole_reason(reason),
            summary=summary,
            action=action,
            phases_ms=self.phases.ms,
            duration_ms=self.phases.total,
        )
        self.store.record(attempt, applied=self.revision if applied else None)


REASON_BOUND = 64 * 1024  # characters: a reason is kept whole, state.json stays bounded


def whole_reason(reason: str) -> str:
    """The reason as history keeps it: every line, each stripped (one-line displays
    shorten it themselves, ``report.one_line``); only a reason longer than
    ``REASON_BOUND`` is cut, and says so."""
    text = "\n".join(line.strip() for line in reason.splitlines() if line.strip())
    if len(text) <= REASON_BOUND:
        return text
    return text[:REASON_BOUND] + f"\n... ({len(text) - REASON_BOUND} more characters not kept)"


def summary(plan: Plan) -> str:
    """The plan in one line for history and the push feedback: changes counted, a
    renewal named in full (``certificate mail.example.com renewed: SHA256 …``)."""
    if not plan.changes:
        return "no change"
    named = [f"{c.area} {c.subject} {c.op}: {c.detail}" for c in plan.changes if c.detail]
    counts: dict[tuple[str, str], int] = {}
    for change in plan.changes:
        if change.detail:
            continue
        key = (change.area, change.op)
        counts[key] = counts.get(key, 0) + 1
    return ", ".join([*named, *(f"{counted(n, area)} {op}" for (area, op), n in counts.items())])


def plan_against_live(
    settings: HostSettings,
    store: StateStore,
    new: State,
    certs: Mapping[str, CertMaterial] | None = None,
) -> Plan:
    """Plan from the revision that is live (if any) to ``new`` with the certificate
    material ``certs`` read for it: a leaf other than the one installed is a renewal."""
    applied = store.load().applied
    base = None
    if applied is not None:
        try:
            base = load_state(gitread.read_revision(settings.repo, applied, limits=settings.limits))
            base = hostsettings.view(settings, base)
        except GitopsMailError:
            base = None  # history rewritten: plan from nothing
    plan = make_plan(base, new)
    if not certs:
        return plan
    config_dir = settings.chasquid.config_dir
    found = {name: installed.leaf(config_dir, name) for name in certs}
    live = {name: facts for name, facts in found.items() if facts is not None}
    return with_renewals(plan, live, {name: facts_of(m) for name, m in certs.items()})


class Terminated(BaseException):
    """SIGTERM before the swap: unwind like KeyboardInterrupt, then end by the signal."""


@contextmanager
def terminable() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` in the block, so cleanups run; then it ends the process.

    Only in the main thread and where SIGTERM has its default action (the
    CLI); elsewhere the owner (the daemon) handles signals its own way.
    """
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    except Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)  # ends the process
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


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
