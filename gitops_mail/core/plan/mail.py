"""Plan the users and aliases: who can log in, and who now receives what.

How a change reaches a running chasquid 1.11 (from its source): every
domain's aliases file is re-read by a periodic timer, registered at start even
when the file is missing; a users file is re-read only if it existed at
start and loaded, and one that disappears is not re-read (the old users stay
until a restart). A domain added or removed needs a restart.

Besides the aliases that changed, the plan lists those left as they were
whose resolution changed through them (``team: sales`` when ``sales``
changed), found by walking only what reaches a domain with changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from gitops_mail.core.formats.addresses import normalize_domain
from gitops_mail.core.formats.aliases.parse import Alias, Kind, Resolution, Resolver
from gitops_mail.core.formats.users.db import Denied, Scheme, User, describe_scheme
from gitops_mail.core.plan.model import (
    WHY_DEPENDS,
    WHY_DOMAINS,
    WHY_GONE_USERS,
    WHY_NEW_USERS,
    Action,
    Change,
    why_reload,
)
from gitops_mail.core.state import DomainState, State

_EMAIL = Kind.EMAIL  # a module constant: looked up for every target of every alias


def mail_changes(base: State, new: State) -> Iterator[Change]:
    """Users and aliases of every domain, then the aliases whose mail now goes elsewhere."""
    changed: set[str] = set()
    domains: set[str] = set()
    for name in sorted(base.domains.keys() | new.domains.keys()):
        before, after = base.domains.get(name), new.domains.get(name)
        for change in (
            *_users(name, before, after, *_users_action(new, before, after)),
            *_aliases(name, base, new),
        ):
            changed.add(change.subject)
            domains.add(name)
            yield change
    domains |= base.domains.keys() ^ new.domains.keys()
    if domains:
        yield from _dependents(base, new, changed, domains)


def _users_action(
    new: State, before: DomainState | None, after: DomainState | None
) -> tuple[Action, str]:
    if before is None or after is None:
        return Action.RESTART, WHY_DOMAINS
    if before.users is None:
        return Action.RESTART, WHY_NEW_USERS
    if not after.has_users_file:
        return Action.RESTART, WHY_GONE_USERS
    return Action.RELOAD, why_reload(new.chasquid_version)


def _aliases_action(base: State, domain: str, new: State) -> tuple[Action, str]:
    if domain in base.domains and domain in new.domains:
        return Action.RELOAD, why_reload(new.chasquid_version)
    return Action.RESTART, WHY_DOMAINS


def _users(
    domain: str, before: DomainState | None, after: DomainState | None, action: Action, why: str
) -> Iterator[Change]:
    if after is not None and after.has_users_file and after.users is None:
        return  # the new file does not parse: validation says where
    if before is not None and after is not None and before.users == after.users:
        return  # the same entries (an unchanged file parses to the very same value)
    old = _by_name(before)
    cur = _by_name(after)
    for user in sorted(cur.keys() | old.keys()):
        address = f"{user}@{domain}"
        if user not in old:
            scheme = describe_scheme(cur[user].scheme)
            yield Change("user", "added", address, None, scheme, action, why)
        elif user not in cur:
            yield Change("user", "removed", address, None, None, action, why)
        elif old[user].scheme != cur[user].scheme:
            op = _scheme_change(old[user].scheme, cur[user].scheme)
            yield Change("user", op, address, None, None, action, why)


def _by_name(domain: DomainState | None) -> dict[str, User]:
    return domain.users.by_name() if domain is not None and domain.users is not None else {}


def _scheme_change(old: Scheme, new: Scheme) -> str:
    if isinstance(new, Denied):
        return "made receive-only"
    if isinstance(old, Denied):
        return "can log in again (password set)"
    if type(old) is not type(new):
        return f"password scheme changed ({describe_scheme(old)} to {describe_scheme(new)})"
    return "password changed"


def _aliases(domain: str, base: State, new: State) -> Iterator[Change]:
    was, now = base.domains.get(domain), new.domains.get(domain)
    if was is not None and now is not None and was.aliases == now.aliases:
        return  # the same entries (an unchanged file parses to the very same value)
    old, cur = _effective(base, domain), _effective(new, domain)
    action, why = _aliases_action(base, domain, new)
    for key in sorted(old.keys() | cur.keys()):
        if key in old and key in cur and old[key].recipients == cur[key].recipients:
            continue
        op = "added" if key not in old else "removed" if key not in cur else "changed"
        address = f"{key}@{domain}"
        area = "catch-all" if key == "*" else "alias"
        before, after = _resolution(base, address), _resolution(new, address)
        yield Change(area, op, address, before, after, action, why)


def _dependents(base: State, new: State, changed: set[str], domains: set[str]) -> Iterator[Change]:
    """Aliases left as they were whose mail now goes elsewhere.

    Only an alias whose resolution visits an address of a domain with changes
    (an alias, a catch-all or a user that changed) can resolve differently:
    every other address it passes resolves alike in both states. Only those
    aliases (``_Reach``) have their resolutions compared.
    """
    reach = _Reach(new.resolver, {normalize_domain(d) or d for d in domains})
    candidates = [
        (key, domain, normalize_domain(domain) or domain)
        for domain in sorted(base.domains.keys() & new.domains.keys())
        if reach.domain_may_reach(normalize_domain(domain) or domain)
        for key in sorted(_effective(base, domain).keys() & _effective(new, domain).keys())
        if f"{key}@{domain}" not in changed
    ]
    reaching = reach.addresses([f"{key}@{local}" for key, _, local in candidates])
    for key, domain, local in candidates:
        if f"{key}@{local}" not in reaching:
            continue
        address = f"{key}@{domain}"
        before, after = _resolution(base, address), _resolution(new, address)
        if before != after:
            area = "catch-all" if key == "*" else "alias"
            op = "resolution changed"
            yield Change(area, op, address, before, after, Action.NONE, WHY_DEPENDS)


class _Reach:
    """Which addresses lead to one of ``domains`` when resolved, in the new state
    (domains without changes resolve alike in both). First on the graph of
    domains (an alias of one targets an address of the other), which rules out
    most at once; then on the graph of the addresses left, walked back from
    those in ``domains``: linear in the size of that graph."""

    def __init__(self, resolver: Resolver, domains: set[str]) -> None:
        self.resolver = resolver
        self.domains = domains
        self._domains_reaching: set[str] | None = None

    def domain_may_reach(self, domain: str) -> bool:
        if self._domains_reaching is None:
            self._domains_reaching = _back(self.domains, self._domain_parents())
        return domain in self._domains_reaching

    def _domain_parents(self) -> dict[str, set[str]]:
        parents: dict[str, set[str]] = {}
        for domain in self.resolver.local_domains():
            targets = {
                target.address.partition("@")[2]
                for alias in self.resolver.aliases(domain).values()
                for target in alias.recipients
                if target.kind is _EMAIL
            }
            for target in targets:
                parents.setdefault(target, set()).add(domain)
        return parents

    def addresses(self, starts: list[str]) -> set[str]:
        """Those of ``starts``, and of the addresses they lead to, that lead to an
        address of ``domains`` (or are one)."""
        parents: dict[str, list[str]] = {}
        seeds, seen, todo = set(), set(starts), list(starts)
        while todo:
            node = todo.pop()
            domain = node.partition("@")[2]
            if domain in self.domains:
                seeds.add(node)
            elif self.domain_may_reach(domain):
                for child in self.resolver.step(node).emails:
                    parents.setdefault(child, []).append(node)
                    if child not in seen:
                        seen.add(child)
                        todo.append(child)
        return _back(seeds, parents)


def _back(seeds: set[str], parents: Mapping[str, Iterable[str]]) -> set[str]:
    """``seeds`` and every node with a path to one of them, by ``parents`` edges."""
    found, todo = set(seeds), list(seeds)
    while todo:
        for parent in parents.get(todo.pop(), ()):
            if parent not in found:
                found.add(parent)
                todo.append(parent)
    return found


def _effective(state: State, domain: str) -> Mapping[str, Alias]:
    found = state.domains.get(domain)
    return found.aliases.effective() if found is not None and found.aliases is not None else {}


def _resolution(state: State, address: str) -> str | None:
    """Who receives mail for ``address`` in ``state``; None when chasquid refuses it."""
    resolution = state.resolver.resolve(address)
    if not resolution.exists and resolution.error is None:
        return None
    return format_resolution(resolution, mark_catch_all=not address.startswith("*@"))


def format_resolution(resolution: Resolution, *, mark_catch_all: bool = True) -> str:
    """Recipients for people: pipes as ``| command``, and whether a catch-all took it."""
    if resolution.error:
        return f"(error: {resolution.error})"
    shown = [r.address if r.kind is Kind.EMAIL else f"| {r.address}" for r in resolution.recipients]
    text = ", ".join(shown) or "(nobody)"
    return f"{text} (catch-all)" if resolution.catch_all and mark_catch_all else text
