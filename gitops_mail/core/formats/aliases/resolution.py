"""chasquid's alias resolution, over aliases files already parsed.

One level per address, failing with "recursion limit exceeded" when it
reaches level 10: a remote address is final; a local one goes to its alias's
targets; without an alias it is final if its user exists, else it goes to the
catch-all's targets, else it is final as it is (its delivery fails later).
Pipes are final. SMTP accepts a local address (``exists``) that has an alias,
is covered by a catch-all, or whose cleaned user exists.

Where versions differ (gitops-mail supports 1.11 and >= 1.14):

- 1.11 cleans a local address before the lookup (removes
  ``drop_characters``, cuts at the first ``suffix_separators`` character) but
  keeps names as written, so ``first.last: x`` or ``a+b: x`` never match.
  From 1.12, names lose their drop characters too (up to the first
  separator), and an address is first looked up with its suffix: ``a+b`` is
  an alias of ``a+b@d`` only.
- From 1.16, ``*`` as a target's user becomes the user being resolved
  (``*: *@other``); before, ``*@dom`` stays as it is, which for a local
  domain means its catch-all.
- In every version, "does the user exist" is asked of the address before it
  is cleaned: with a catch-all, mail to ``user+tag@d`` or ``us.er@d`` goes to
  the catch-all, not to ``user@d`` (measured on 1.11).

chasquid always counts ``localhost`` as a local domain; so does ``Resolver``.
"""

from __future__ import annotations

import enum
import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from gitops_mail.core.formats.addresses import (
    normalize_address,
    normalize_domain,
    split_address,
    user_or_raw,
)

RECURSION_LIMIT = 10
RECURSION_ERROR = "recursion limit exceeded"
MAX_RECIPIENTS = 10000  # ours, not chasquid's: keeps absurd fan-outs finite
MAX_ADDRESS_BYTES = 256  # RCPT TO refuses longer addresses
CATCH_ALL = "*"


class Kind(enum.Enum):
    EMAIL = "email"
    PIPE = "pipe"


@dataclass(frozen=True)
class Recipient:
    address: str  # for PIPE, the command line
    kind: Kind = Kind.EMAIL


@dataclass(frozen=True)
class Alias:
    name: str  # normalised left side, "*" for the catch-all
    raw_name: str  # as written
    recipients: tuple[Recipient, ...]  # empty: chasquid treats the name as having no alias
    line: int


@dataclass(frozen=True)
class DomainAliases:
    users: frozenset[str]  # user names as the users file holds them
    aliases: Mapping[str, Alias]  # AliasFile.effective()


@dataclass(frozen=True)
class Resolution:
    recipients: tuple[Recipient, ...]  # chasquid's order, duplicates kept
    error: str | None  # chasquid's error, e.g. "recursion limit exceeded"
    catch_all: bool  # a catch-all was used somewhere
    exists: bool  # chasquid accepts RCPT TO for it from anyone (False for remote addresses)


class How(enum.Enum):
    REMOTE = "remote"  # final: not a local domain
    ALIAS = "alias"  # continues with the alias's targets
    USER = "user"  # final: the user exists
    CATCH_ALL = "catch-all"  # continues with the catch-all's targets
    UNKNOWN = "unknown"  # final, as it is: no alias, user or catch-all


# Enum members as module constants: ``How.USER`` is an attribute lookup on the
# class, measurably slower where it runs for every address.
_REMOTE, _ALIAS, _USER = How.REMOTE, How.ALIAS, How.USER
_CATCH_ALL, _UNKNOWN = How.CATCH_ALL, How.UNKNOWN
_EMAIL = Kind.EMAIL
_new = tuple.__new__  # builds a Step without the Python-level __new__ of NamedTuple
_LINE = operator.attrgetter("line")


class Step(NamedTuple):
    """One level of chasquid's resolution of an address (a tuple: made for every
    address of the alias graph, so it must be cheap to build)."""

    address: str  # what chasquid continues with: cleaned unless an alias matched exactly
    how: How
    alias: Alias | None = None
    targets: tuple[Recipient, ...] = ()  # for ALIAS and CATCH_ALL, "*" users replaced
    emails: tuple[str, ...] = ()  # the addresses of the e-mail targets: where it goes on


@dataclass(frozen=True)
class _Walk:
    recipients: tuple[Recipient, ...]
    error: str | None
    catch_all: bool
    height: int = 0  # levels of aliases below the address (without an error)


class Resolver:
    """chasquid's alias resolution over all local domains, memoised.

    ``chasquid_version`` selects the rules that changed (see the module
    docstring); ``domains`` is keyed by directory name, normalised like
    chasquid does at start-up.
    """

    def __init__(
        self,
        domains: Mapping[str, DomainAliases],
        *,
        drop_characters: str = ".",
        suffix_separators: str = "+",
        chasquid_version: tuple[int, int] = (1, 11),
    ) -> None:
        self.drop_characters = drop_characters
        self.suffix_separators = suffix_separators
        self.chasquid_version = chasquid_version
        self._exact_first = chasquid_version >= (1, 12)
        self._stars = chasquid_version >= (1, 16)  # "*" as a target's user: the one resolved
        self._no_drops = str.maketrans("", "", drop_characters)
        self._separator = (
            re.compile(f"[{re.escape(suffix_separators)}]") if suffix_separators else None
        )
        self._cleaned: dict[str, str] = {}
        self._exact: dict[str, str] = {}
        self._users: dict[str, frozenset[str]] = {"localhost": frozenset()}
        self._sources: dict[str, Mapping[str, Alias]] = {"localhost": {}}
        for name, domain in domains.items():
            key = normalize_domain(name) or name
            self._users[key] = domain.users
            self._sources[key] = domain.aliases
        # Lookup tables are built on first use: a plan asks the base revision
        # about a few domains only.
        self._tables: dict[str, dict[str, Alias]] = {}
        self._steps: dict[str, Step] = {}
        # Before 1.16: each alias's targets and their e-mail addresses, by id (the
        # tables keep the aliases alive).
        self._alias_targets: dict[int, tuple[tuple[Recipient, ...], tuple[str, ...]]] = {}
        self._walks: dict[tuple[str, int], _Walk] = {}
        self._clean_walks: dict[str, _Walk] = {}  # walks without error, for any depth

    def _table(self, domain: str) -> dict[str, Alias] | None:
        """The lookup table of a local domain (None for any other), built once."""
        found = self._tables.get(domain)
        if found is None and domain in self._sources:
            aliases = sorted(self._sources[domain].values(), key=_LINE)
            table = dict(zip(self.keys(aliases), aliases, strict=True))
            found = self._tables[domain] = {k: a for k, a in table.items() if a.recipients}
            if not self._stars:  # before 1.16 an alias goes on the same way for every user
                self._alias_targets.update(
                    {
                        id(a): (
                            a.recipients,
                            tuple([t.address for t in a.recipients if t.kind is _EMAIL]),
                        )
                        for a in found.values()
                    }
                )
        return found

    def keys(self, aliases: Iterable[Alias]) -> list[str]:
        """The user part chasquid stores each alias under, in order."""
        if not self._exact_first:
            return [alias.name for alias in aliases]
        return [user_or_raw(self._drop(alias.raw_name)) for alias in aliases]

    def is_local(self, domain: str) -> bool:
        return domain in self._sources

    def local_domains(self) -> list[str]:
        """Every local domain, normalised, ``localhost`` included."""
        return list(self._sources)

    def users(self, domain: str) -> frozenset[str]:
        return self._users.get(domain, frozenset())

    def aliases(self, domain: str) -> Mapping[str, Alias]:
        """Lookup key -> alias in effect (with recipients) for a local domain."""
        return self._table(domain) or {}

    def clean_user(self, user: str) -> str:
        """``user`` cut at the first suffix separator, drop characters removed."""
        found = self._cleaned.get(user)
        if found is None:
            cut = self._cut(user)
            found = self._cleaned[user] = user_or_raw(user[:cut].translate(self._no_drops))
        return found

    def _exact_key(self, user: str) -> str:
        """The key chasquid >= 1.12 looks ``user`` up with first (suffix kept), memoised."""
        found = self._exact.get(user)
        if found is None:
            found = self._exact[user] = user_or_raw(self._drop(user))
        return found

    def _cut(self, user: str) -> int:
        found = self._separator.search(user) if self._separator else None
        return found.start() if found else len(user)

    def _drop(self, user: str) -> str:
        """Drop characters removed before the first suffix separator (chasquid >= 1.12)."""
        cut = self._cut(user)
        return user[:cut].translate(self._no_drops) + user[cut:]

    def step(self, address: str) -> Step:
        """One level of resolving ``address`` (as chasquid passes it on), memoised."""
        found = self._steps.get(address)
        if found is None:
            found = self._steps[address] = self._step(address)
        return found

    def _step(self, address: str) -> Step:
        user, _, domain = address.partition("@")  # split_address, inlined: runs per node
        table = self._tables.get(domain) or self._table(domain)
        if table is None:
            return _new(Step, (address, _REMOTE, None, (), ()))
        alias = table.get(self._exact_key(user)) if self._exact_first else None
        if alias is None:
            clean = self._cleaned.get(user) or self.clean_user(user)
            if clean != user:  # else the address stays the very same string
                address = f"{clean}@{domain}"
            alias = table.get(clean)
        if alias is not None:
            return _new(Step, (address, _ALIAS, alias, *self._targets(alias, user)))
        if user in self._users[domain]:
            return _new(Step, (address, _USER, None, (), ()))
        alias = table.get(CATCH_ALL)
        if alias is not None:
            return _new(Step, (address, _CATCH_ALL, alias, *self._targets(alias, user)))
        return _new(Step, (address, _UNKNOWN, None, (), ()))

    def _targets(self, alias: Alias, user: str) -> tuple[tuple[Recipient, ...], tuple[str, ...]]:
        """The targets of ``alias`` (of a table) reached as ``user``, and their e-mail addresses."""
        if not self._stars:
            return self._alias_targets[id(alias)]
        targets = tuple([_star(target, user) for target in alias.recipients])
        return targets, _emails(targets)

    def accepts(self, address: str) -> bool:
        """Would chasquid accept RCPT TO for this (normalised) local address?"""
        user, domain = split_address(address)
        table = self._table(domain)
        if table is None:
            return False
        clean = self.clean_user(user)
        exact = self._exact_first and self._exact_key(user) in table
        return exact or clean in table or CATCH_ALL in table or clean in self._users[domain]

    def resolve(self, address: str) -> Resolution:
        """Where chasquid delivers mail that arrives for ``address`` by SMTP."""
        incoming = self.incoming(address)
        if incoming is None:
            return Resolution((), "destination address is invalid", False, False)
        walk = self._walk(incoming, 0)
        return Resolution(walk.recipients, walk.error, walk.catch_all, self.accepts(incoming))

    def incoming(self, address: str) -> str | None:
        """``address`` normalised like chasquid's RCPT TO; None where it refuses it."""
        user, domain = split_address(address)
        normal = normalize_domain(domain)
        size = len(f"{user}@{normal}".encode("utf-8", "surrogateescape"))  # raw bytes kept
        if normal is None or size > MAX_ADDRESS_BYTES:
            return None
        if normal in self._sources or not normal:
            return normalize_address(f"{user}@{normal}")
        return f"{user}@{normal}"

    def _walk(self, address: str, depth: int) -> _Walk:
        """``address`` resolved as if reached at level ``depth``, memoised.

        Depth only matters through the recursion limit: a walk that ended
        without error is the same from every level that keeps its height under
        the limit, so each address is walked once, not once per level.
        """
        found = self._clean_walks.get(address)
        if found is not None and depth + found.height < RECURSION_LIMIT:
            return found
        found = self._walks.get((address, depth))
        if found is None:
            found = self._walks[(address, depth)] = self._walk_once(address, depth)
            if found.error is None:
                self._clean_walks[address] = found
        return found

    def _walk_once(self, address: str, depth: int) -> _Walk:
        if depth >= RECURSION_LIMIT:
            return _Walk((), RECURSION_ERROR, False)
        step = self.step(address)
        if step.alias is None:
            return _Walk((Recipient(step.address),), None, False)
        catch_all = step.how is How.CATCH_ALL or step.alias.name == CATCH_ALL
        found: list[Recipient] = []
        height = 0
        for target in step.targets:
            sub = _Walk((target,), None, False)
            if target.kind is Kind.EMAIL:
                sub = self._walk(target.address, depth + 1)
                height = max(height, sub.height + 1)
            catch_all = catch_all or sub.catch_all
            if sub.error is not None:
                return _Walk((), sub.error, catch_all)
            found += sub.recipients
            if len(found) > MAX_RECIPIENTS:
                return _Walk((), f"more than {MAX_RECIPIENTS} recipients", catch_all)
        return _Walk(tuple(found), None, catch_all, height)


def _emails(targets: tuple[Recipient, ...]) -> tuple[str, ...]:
    return tuple([target.address for target in targets if target.kind is _EMAIL])


def _star(target: Recipient, user: str) -> Recipient:
    target_user, domain = split_address(target.address)
    if target.kind is Kind.PIPE or target_user != CATCH_ALL:
        return target
    return Recipient(f"{user}@{domain}")
