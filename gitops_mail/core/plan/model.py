"""A plan as data: its changes, the action chasquid needs, and why.

``make`` builds it; ``report`` shows it; ``apply`` carries it out. What a
host does to chasquid (``Decision``, from ``decide``) is the one answer
``plan --live``, ``apply``, the daemon's events, history and the push
feedback all tell: the action a change needs, as this host carries it out
(``reload_strategy: restart`` restarts where a reload would do).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gitops_mail.core.problems import Problem


class Action(enum.IntEnum):
    NONE = 0
    RELOAD = 1
    RESTART = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def done(self) -> str:
        """What was done to chasquid, in words, once the action is carried out."""
        return _DONE[self]

    @classmethod
    def of(cls, label: str) -> Action | None:
        """The action a ``label`` names (as history records it); None for another word."""
        return next((a for a in cls if a.label == label), None)


_DONE = {
    Action.NONE: "no restart needed",
    Action.RELOAD: "picked up by chasquid's periodic reload",
    Action.RESTART: "restarted chasquid",
}


@dataclass(frozen=True)
class Decision:
    """What this host does to chasquid for a plan, and why."""

    action: Action
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    """One semantic change; ``area`` is domain, user, alias, catch-all, hostname,
    listen, config, certificate, hook, manifest or file."""

    area: str
    op: str  # added, removed, changed, password changed, made receive-only, ...
    subject: str
    before: str | None
    after: str | None
    action: Action
    why: str
    note: str = ""
    detail: str = ""  # the change in words where before and after do not say it (a renewal)


@dataclass(frozen=True)
class Plan:
    base: str
    target: str
    changes: tuple[Change, ...]
    problems: tuple[Problem, ...]
    decision: Decision | None = None  # planned for a host (``decide``); None: for any host

    @property
    def action(self) -> Action:
        """What the changes need of chasquid (a host may do more: ``decision``)."""
        return max((c.action for c in self.changes), default=Action.NONE)

    @property
    def reasons(self) -> tuple[str, ...]:
        wanted = self.action
        return tuple(dict.fromkeys(c.why for c in self.changes if c.action is wanted))

    @property
    def has_errors(self) -> bool:
        return any(p.is_error for p in self.problems)


WHY_DOMAINS = "chasquid reads its list of domains only at start"
WHY_CONFIG = "chasquid reads chasquid.conf only at start"
WHY_CERTS = "chasquid loads certificates only at start"
WHY_HOOKS = "hooks are read again for every message"
WHY_NEW_USERS = "chasquid re-reads only the users files that loaded at start"
WHY_GONE_USERS = "chasquid keeps the users of a users file that disappears until it restarts"
WHY_DNS = "changes the DNS records to publish (see gitops-mail dns), not chasquid"
WHY_SETTINGS = "changes what gitops-mail allows and expects of the server, not chasquid"
WHY_DEPENDS = "follows from the changes above"


WHY_RESTART_NOT_WAIT = (
    "this host restarts chasquid rather than wait for its reload (reload_strategy: restart)"
)
WHY_INTERRUPTED = "the last apply stopped before its proof: chasquid may not serve what is on disk"
WHY_FILES = "the files in chasquid's config dir differ from the revision (changed by hand?)"


def decide(
    plan: Plan, needed: Action, reload_strategy: str, *, interrupted: bool = False
) -> Decision:
    """What this host does to chasquid: ``needed`` (what the files that change need;
    ``plan.action`` where nothing is staged) as ``reload_strategy`` carries it out.

    The one place the action is decided: apply carries out ``action`` and
    records it; plan, history, the daemon's events and the push say it.
    """
    if interrupted:
        return Decision(Action.RESTART, (WHY_INTERRUPTED,))
    why = tuple(dict.fromkeys(c.why for c in plan.changes if c.action is needed))
    if not why and needed is not Action.NONE:
        why = (WHY_FILES,)
    if needed is Action.RELOAD and reload_strategy != "wait":
        return Decision(Action.RESTART, (*why, WHY_RESTART_NOT_WAIT))
    return Decision(needed, why)


def why_reload(version: tuple[int, int]) -> str:
    if version >= (1, 15):
        return "users and aliases are re-read on SIGHUP (chasquid >= 1.15)"
    return "users and aliases of a running domain are re-read by chasquid's 30 s reload"
