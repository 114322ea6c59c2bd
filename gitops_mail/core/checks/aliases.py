"""Aliases checks over all domains at once, by chasquid's own resolution rules.

Per file: the parser's problems, overridden duplicates, names chasquid never
matches, aliases that hide a user, pipes, local targets that go nowhere, and
placeholders left in (the scaffold's ``you@gmail.com``, example.com, .net and
.org, reserved for examples by RFC 2606).
Across files: loops and chains deeper than chasquid's recursion limit, found
on the graph of addresses (one ``Resolver.step`` each, memoised), in time
linear in its size.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

from gitops_mail.core.checks.graph import graph_problems
from gitops_mail.core.formats.addresses import (
    GO_SPACE,
    normalize_address,
    normalize_domain,
    split_address,
)
from gitops_mail.core.formats.aliases.parse import (
    CATCH_ALL,
    Alias,
    AliasFile,
    How,
    Kind,
    Resolver,
    Step,
)
from gitops_mail.core.problems import Problem, Severity

_FIELDS = re.compile(f"[{re.escape(GO_SPACE)}]+")
SCAFFOLD_ADDRESS = "you@gmail.com"  # where `gitops-mail init` forwards mail, to be replaced
# RFC 2606: the second-level domains reserved for examples, and their subdomains.
_EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")
_EXAMPLE_ENDS = tuple(f"{c}{d}" for d in _EXAMPLE_DOMAINS for c in "@.")


def check_aliases(
    resolver: Resolver, files: Mapping[str, tuple[str, AliasFile]], *, allow_pipes: bool
) -> list[Problem]:
    """Every problem of the aliases files; ``resolver`` is built from the same data.

    ``files`` maps each domain (directory name) to its repo path and parsed file.
    """
    found: list[Problem] = []
    paths: dict[str, str] = {}
    for name, (path, parsed) in sorted(files.items()):
        domain = normalize_domain(name) or name
        paths[domain] = path
        found += parsed.problems
        found += _duplicates(resolver, path, parsed)
        found += _alias_problems(resolver, domain, path, allow_pipes=allow_pipes)
    found += graph_problems(resolver, paths)
    return found


_ODD = (How.CATCH_ALL, How.UNKNOWN)  # only local targets that go there can be wrong
_EMAIL = Kind.EMAIL  # a module constant: looked up for every target


def _alias_problems(
    resolver: Resolver, domain: str, path: str, *, allow_pipes: bool
) -> list[Problem]:
    """What is wrong with each alias in effect in ``domain``, on its own. Runs for
    every alias, so the usual case (nothing wrong) costs a few lookups."""
    found: list[Problem] = []
    users, step = resolver.users(domain), resolver.step
    names_cleaned = resolver.chasquid_version < (1, 12)
    for key, alias in sorted(resolver.aliases(domain).items()):
        if names_cleaned and resolver.clean_user(alias.name) != alias.name:
            found += _unreachable(resolver, domain, alias, _Site(path, alias))
        if key in users:
            found += _shadows_user(resolver, domain, key, _Site(path, alias))
        if [r for r in alias.recipients if r.kind is not _EMAIL or _odd(step, r.address)]:
            found += _recipients(resolver, _Site(path, alias), allow_pipes)
    return found


def _odd(step: Callable[[str], Step], address: str) -> bool:
    return step(address).how in _ODD or placeholder(address) is not None


def placeholder(address: str) -> str | None:
    """Why ``address`` is a placeholder nobody receives mail at, if it is one."""
    lowered = address.lower()
    if lowered == SCAFFOLD_ADDRESS:
        return "it is the placeholder `gitops-mail init` writes"
    if not lowered.endswith(_EXAMPLE_ENDS):
        return None
    return f"{lowered.rpartition('@')[2]} is reserved for examples (RFC 2606)"


def _recipients(resolver: Resolver, site: _Site, allow_pipes: bool) -> list[Problem]:
    """The pipes of an alias, then its targets that go nowhere or to a catch-all."""
    found: list[Problem] = []
    for recipient in site.alias.recipients:
        if recipient.kind is not _EMAIL:
            found += _pipe(recipient.address, site, allow_pipes)
    for recipient in site.alias.recipients:
        how = resolver.step(recipient.address).how if recipient.kind is _EMAIL else None
        if how in _ODD:
            found += _target(resolver, recipient.address, site)
        elif how is How.REMOTE and (why := placeholder(recipient.address)) is not None:
            found.append(_placeholder(recipient.address, why, site))
    return found


def _placeholder(address: str, why: str, site: _Site) -> Problem:
    return site.problem(
        "placeholder",
        f"target {address} of {site.alias.raw_name!r} is not a real mailbox: {why}",
        "replace it with the address that should receive this mail",
        warn=True,
    )


class _Site(NamedTuple):
    path: str
    alias: Alias

    def problem(self, code: str, message: str, hint: str, warn: bool = False) -> Problem:
        severity = Severity.WARNING if warn else Severity.ERROR
        return Problem(self.path, self.alias.line, f"aliases.{code}", message, hint, severity)


def _duplicates(resolver: Resolver, path: str, parsed: AliasFile) -> Iterator[Problem]:
    keys = resolver.keys(parsed.aliases)
    last = dict(zip(keys, parsed.aliases, strict=True))
    if len(last) == len(keys):
        return  # no name twice
    for key, alias in zip(keys, parsed.aliases, strict=True):
        winner = last[key]
        if winner is alias:
            continue
        spelled = "" if winner.raw_name == alias.raw_name else f" (as {winner.raw_name!r})"
        yield _Site(path, alias).problem(
            "duplicate",
            f"alias {alias.raw_name!r} is defined again on line {winner.line}{spelled}: "
            "chasquid uses the last definition and ignores this one",
            f"delete this line, or merge its targets into line {winner.line}",
            warn=True,
        )


def _unreachable(resolver: Resolver, domain: str, alias: Alias, site: _Site) -> list[Problem]:
    if resolver.chasquid_version >= (1, 12) or alias.name == CATCH_ALL:
        return []
    clean = resolver.clean_user(alias.name)
    if clean == alias.name:
        return []
    return [
        site.problem(
            "unreachable",
            f"alias {alias.raw_name!r} never matches in chasquid 1.11: it removes "
            f"{resolver.drop_characters!r} and cuts at {resolver.suffix_separators!r} before the "
            f"lookup, so mail to {alias.name}@{domain} looks for {clean!r}",
            f"name the alias {clean!r} (from 1.12, chasquid matches {alias.raw_name!r} as written)",
            warn=True,
        )
    ]


def _shadows_user(resolver: Resolver, domain: str, key: str, site: _Site) -> list[Problem]:
    if key not in resolver.users(domain):
        return []
    address = f"{key}@{domain}"
    return [
        site.problem(
            "shadows-user",
            f"alias {site.alias.raw_name!r} has the name of the user {address}: chasquid "
            f"delivers mail for {address} to the alias, never to the user's mailbox",
            "nothing to do if the user only sends mail; else delete the alias (it cannot "
            "list its own address: that is a loop)",
            warn=True,
        )
    ]


def _pipe(command: str, site: _Site, allow_pipes: bool) -> list[Problem]:
    name = site.alias.raw_name
    if not allow_pipes:
        return [
            site.problem(
                "pipe-not-allowed",
                f"alias {name!r} pipes mail to a command ({command!r}), "
                "and pipe aliases are not enabled",
                "set `chasquid.pipe_aliases: true` in gitops-mail.yaml to allow them "
                "(the command runs as chasquid's user); the host's policy must allow them too "
                "(policy.pipe_aliases)",
            )
        ]
    program = _FIELDS.split(command)[0]
    if program.startswith("/"):
        return []
    how = "looks it up in its PATH" if "/" not in program else "starts it in its config dir"
    return [
        site.problem(
            "pipe-relative",
            f"pipe command {program!r} of {name!r} is not an absolute path: chasquid {how}",
            f"write the full path, for example /usr/bin/{program.rsplit('/', 1)[-1]}",
        )
    ]


def _target(resolver: Resolver, target: str, site: _Site) -> Iterator[Problem]:
    step = resolver.step(target)
    user, domain = split_address(target)
    if user == CATCH_ALL and resolver.chasquid_version >= (1, 16):
        return  # replaced by the user being resolved
    if normalize_address(target) is None:
        return  # the parser reports it
    clean = resolver.clean_user(user)
    if step.how is How.CATCH_ALL and clean in resolver.users(domain):
        yield site.problem(
            "catch-all-captures",
            f"target {target} of {site.alias.raw_name!r} goes to the catch-all of {domain}, "
            f"not to the user {clean}@{domain}: chasquid asks whether {user!r} is a user "
            "before it removes drop characters and suffixes",
            f"write the target as {clean}@{domain}",
            warn=True,
        )
    elif step.how is How.UNKNOWN and domain != "localhost" and clean not in resolver.users(domain):
        yield site.problem(
            "unknown-target",
            f"target {target} of {site.alias.raw_name!r} does not exist: {domain} has no "
            f"user, alias or catch-all for {clean!r}, so its delivery fails",
            f"add the user (gitops-mail user add {clean}@{domain}) or an alias, "
            "or correct the address",
        )
