"""A plan as data: its changes, the action chasquid needs, and why.

``make`` builds it; ``report`` shows it; ``apply`` carries it out.
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


@dataclass(frozen=True)
class Plan:
    base: str
    target: str
    changes: tuple[Change, ...]
    problems: tuple[Problem, ...]

    @property
    def action(self) -> Action:
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


def why_reload(version: tuple[int, int]) -> str:
    if version >= (1, 15):
        return "users and aliases are re-read on SIGHUP (chasquid >= 1.15)"
    return "users and aliases of a running domain are re-read by chasquid's 30 s reload"
