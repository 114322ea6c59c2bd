"""``hosts:``: several servers from one repo (pure).

A manifest without ``hosts:`` is for one server: chasquid.conf's hostname,
``server.ipv4/ipv6``, every certificate and every DKIM selector are that
server's. With ``hosts:``, each entry names a server (its host settings say
``host: NAME``) and holds what differs between servers: ``hostname``,
addresses, ``mx_priority``, the ``certificate`` entry only it installs, the
``dkim_selector`` only it signs with, and chasquid.conf ``overrides`` (listen
addresses, ``data_dir``, ...). Users, aliases, domains and the rest of
chasquid.conf are shared.

``parse_hosts`` builds the entries, ``host_problems`` checks what the schema
cannot; ``roles`` answers what one server of them does.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any, NamedTuple

from gitops_mail.core.domainname import label_error, name_error
from gitops_mail.core.manifest.rules import _address, _get, _mapping, _Rules, _strings
from gitops_mail.core.problems import Problem
from gitops_mail.core.yamldoc.document import KeyPath, YamlDoc

MX_STEP = 10  # default priorities: 10, 20, 30 in the order the hosts are listed
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")
NAME_RULE = "1-32 lower-case letters, digits or '-', like mx1"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class HostEntry(NamedTuple):
    """One server of ``hosts:``."""

    name: str
    hostname: str
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]
    mx_priority: int
    certificate: str | None
    dkim_selector: str | None
    overrides: Mapping[str, str | tuple[str, ...]]
    line: int

    @property
    def addresses(self) -> tuple[Address, ...]:
        """IPv4 first, each sorted."""
        found = {ipaddress.ip_address(a) for a in (*self.ipv4, *self.ipv6)}
        return tuple(sorted(found, key=lambda a: (a.version, a)))


Hosts = Mapping[str, HostEntry]
NO_HOSTS: Hosts = MappingProxyType({})


def parse_hosts(doc: YamlDoc) -> Hosts:
    """The entries of a schema-valid manifest, in the order listed."""
    raw = _mapping(_get(doc.data, "hosts"))
    out = {}
    for index, (name, entry) in enumerate(raw.items()):
        values = entry if isinstance(entry, dict) else {}
        overrides = values.get("overrides") or {}
        out[name] = HostEntry(
            name=name,
            hostname=str(values["hostname"]),
            ipv4=tuple(values.get("ipv4", ())),
            ipv6=tuple(values.get("ipv6", ())),
            mx_priority=int(values.get("mx_priority", MX_STEP * (index + 1))),
            certificate=values.get("certificate"),
            dkim_selector=values.get("dkim_selector"),
            overrides=MappingProxyType(
                {k: tuple(v) if isinstance(v, list) else str(v) for k, v in overrides.items()}
            ),
            line=doc.line_of(("hosts", name)) or 1,
        )
    return MappingProxyType(out)


# --- questions the other modules ask ------------------------------------------------


def mx_order(hosts: Hosts) -> list[HostEntry]:
    """The hosts by MX priority, then as listed."""
    listed = list(hosts.values())
    return sorted(listed, key=lambda e: (e.mx_priority, listed.index(e)))


# --- rules the schema cannot say ----------------------------------------------------


def host_problems(doc: YamlDoc, file: str) -> list[Problem]:
    hosts = _mapping(_get(doc.data, "hosts"))
    if not hosts:
        return []
    rules = _Rules(doc, file)
    problems = list(_server_too(rules, doc.data))
    hostnames: list[tuple[KeyPath, object, str]] = []
    for name, entry in hosts.items():
        problems += _entry(rules, name, entry, doc.data)
        hostname = _get(entry, "hostname")
        if isinstance(hostname, str):
            hostnames.append((("hosts", name, "hostname"), hostname.lower(), hostname))
    problems += rules.repeats(hostnames, "manifest.host-duplicate")
    problems += _dkim_selectors(rules, hosts, doc.data)
    return problems


def _server_too(rules: _Rules, data: object) -> Iterator[Problem]:
    for family in ("ipv4", "ipv6"):
        if _get(data, "server", family):
            message = "with hosts:, each host lists its own addresses"
            hint = f"move server.{family} into hosts.<name>.{family}"
            yield rules.error(("server", family), "manifest.server-and-hosts", message, hint)


def _entry(rules: _Rules, name: str, entry: object, data: object) -> Iterator[Problem]:
    path: KeyPath = ("hosts", name)
    if not _NAME.fullmatch(name):
        message = f"{name!r} cannot name a host: use {NAME_RULE}"
        yield rules.error(path, "manifest.host-name", message, "rename it, e.g. mx1")
    hostname = _get(entry, "hostname")
    reason = name_error(hostname) if isinstance(hostname, str) else None
    if reason:
        message = f"{hostname!r} is not a valid host name: it {reason}"
        yield rules.error((*path, "hostname"), "manifest.hostname", message, "like mx1.example.com")
    for version in (4, 6):
        for index, text in _strings(_get(entry, f"ipv{version}")):
            where = (*path, f"ipv{version}", index)
            found, address = _address(rules, where, text, version)
            other = f"move it to hosts.{name}.ipv{10 - version}"  # 4 <-> 6
            for problem in found:
                family = problem.code == "manifest.ip-family" and address is None
                yield replace(problem, hint=other) if family else problem
    certificate = _get(entry, "certificate")
    listed = _get(data, "certificates")
    names = [_get(c, "name") for c in (listed if isinstance(listed, list) else [])]
    if isinstance(certificate, str) and certificate not in names:
        shown = ", ".join(str(n) for n in names if isinstance(n, str)) or "none"
        message = f"{certificate!r} is not the name of a certificates: entry (listed: {shown})"
        hint = "add it under certificates:, or name one that is there"
        yield rules.error((*path, "certificate"), "manifest.host-certificate", message, hint)


def _dkim_selectors(rules: _Rules, hosts: dict[str, Any], data: object) -> Iterator[Problem]:
    """Each host its own selector, or none does (one shared key), and each one published."""
    chosen = {n: _get(e, "dkim_selector") for n, e in hosts.items()}
    given = {n: s for n, s in chosen.items() if isinstance(s, str)}
    if not given:
        return
    for name in hosts:
        if name not in given:
            message = "names no dkim_selector, but other hosts do: each signs with its own key"
            hint = "give it a dkim_selector too, or remove dkim_selector from every host"
            yield rules.error(("hosts", name), "manifest.host-dkim-missing", message, hint)
    seen: list[tuple[KeyPath, object, str]] = []
    for name, selector in given.items():
        where: KeyPath = ("hosts", name, "dkim_selector")
        reason = label_error(selector)
        if reason:
            message = f"{selector!r} is not a valid selector: it {reason}"
            yield rules.error(where, "manifest.dkim-selector", message, "like mx1-2026")
            continue
        seen.append((where, selector.lower(), selector))
        for domain, settings in _mapping(_get(data, "domains")).items():
            listed = [s.lower() for _, s in _strings(_get(settings, "dkim", "selectors"))]
            if _get(settings, "dkim") is not None and selector.lower() not in listed:
                message = f"{selector!r} is not among domains.{domain}.dkim.selectors"
                hint = f"add {selector} to the selectors of {domain}: the zone publishes each"
                yield rules.error(where, "manifest.host-dkim-unlisted", message, hint)
    yield from rules.repeats(seen, "manifest.host-dkim-duplicate")
