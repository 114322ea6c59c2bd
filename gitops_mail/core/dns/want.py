"""What live DNS should say, as ``gitops-mail check`` compares it (pure).

``desired`` gathers it from the state (hostname, the manifest's addresses and
domains), from the records of the zones ``zone.render_zones`` writes (SPF,
DMARC, MTA-STS, TLS-RPT values, read back from the zone text by the caller so
that the zone file stays the one definition of each value) and from each DKIM
selector's local public key. ``questions`` lists what to ask a resolver.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from gitops_mail.core.domainname import to_ascii
from gitops_mail.core.manifest.hosts import mx_order
from gitops_mail.core.state import State

Question = tuple[str, str]  # (absolute name with its trailing dot, record type)
Records = Mapping[Question, tuple[str, ...]]  # a zone's records: TXT strings joined
DkimKeys = Mapping[str, str | None]  # selector -> the local public key (p=), None: none yet


@dataclass(frozen=True)
class DomainWant:
    name: str  # an A-label, no trailing dot
    spf: str | None  # the zone's SPF value; None when the manifest sets none
    dmarc: str | None
    mta_sts: str | None  # the _mta-sts TXT value, when the manifest declares MTA-STS
    tls_rpt: str | None
    dkim: tuple[tuple[str, str | None], ...]  # (selector, local p=) in manifest order

    @property
    def fqdn(self) -> str:
        return self.name + "."


@dataclass(frozen=True)
class Server:
    """One mail server: its hostname (an A-label, no trailing dot) and addresses."""

    hostname: str
    addresses: tuple[str, ...]  # IPv4 first, sorted

    def family(self, version: int) -> tuple[str, ...]:
        return tuple(a for a in self.addresses if ipaddress.ip_address(a).version == version)


@dataclass(frozen=True)
class Desired:
    hostname: str  # chasquid's hostname, an A-label without trailing dot ("" if unknown)
    addresses: tuple[str, ...]  # the manifest's server addresses, IPv4 first, sorted
    domains: tuple[DomainWant, ...]
    hosts: tuple[Server, ...] = ()  # the manifest's hosts:, by MX priority; () for one server

    def family(self, version: int) -> tuple[str, ...]:
        return tuple(a for a in self.addresses if ipaddress.ip_address(a).version == version)

    @property
    def servers(self) -> tuple[Server, ...]:
        """Every server the MX, A/AAAA and PTR records name."""
        return self.hosts or ((Server(self.hostname, self.addresses),) if self.hostname else ())


def desired(state: State, zones: Mapping[str, Records], dkim: Mapping[str, DkimKeys]) -> Desired:
    """``zones`` and ``dkim`` are keyed by the domain's A-label."""
    manifest = state.manifest
    hostname = (to_ascii(state.hostname) or state.hostname) if state.hostname else ""
    if manifest is None:
        return Desired(hostname.rstrip("."), (), ())
    hosts = tuple(
        Server(to_ascii(e.hostname) or e.hostname, tuple(str(a) for a in e.addresses))
        for e in mx_order(manifest.hosts)
    )
    listed = (*manifest.ipv4, *manifest.ipv6, *(a for h in hosts for a in h.addresses))
    found = {ipaddress.ip_address(a) for a in listed}
    addresses = tuple(str(a) for a in sorted(found, key=lambda a: (a.version, a)))
    domains = []
    for name, settings in manifest.domains.items():
        origin = to_ascii(name) or name
        records = zones.get(origin, {})
        keys = dkim.get(origin, {})
        selectors = settings.dkim.selectors if settings.dkim is not None else ()
        domains.append(
            DomainWant(
                name=origin,
                spf=_txt(records, origin + ".", "v=spf1") if settings.spf else None,
                dmarc=_txt(records, f"_dmarc.{origin}.", "v=DMARC1") if settings.dmarc else None,
                mta_sts=_txt(records, f"_mta-sts.{origin}.", "v=STSv1")
                if settings.mta_sts
                else None,
                tls_rpt=_txt(records, f"_smtp._tls.{origin}.", "v=TLSRPTv1")
                if settings.tls_rpt
                else None,
                dkim=tuple((s, keys.get(s)) for s in selectors),
            )
        )
    return Desired(hostname.rstrip("."), addresses, tuple(domains), hosts)


def _txt(records: Records, name: str, prefix: str) -> str | None:
    for value in records.get((name, "TXT"), ()):
        if starts_with_tag(value, prefix):
            return value
    return None


def starts_with_tag(value: str, prefix: str) -> bool:
    """``value`` starts with the version tag ``prefix`` (``v=spf1``) as a whole term."""
    head = value[: len(prefix)]
    rest = value[len(prefix) : len(prefix) + 1]
    return head.lower() == prefix.lower() and rest in ("", " ", ";")


def reverse_name(address: str) -> str:
    """The PTR owner name of an address: ``7.2.0.192.in-addr.arpa.``."""
    return ipaddress.ip_address(address).reverse_pointer + "."


def questions(want: Desired) -> list[Question]:
    """Every (name, type) the check asks a resolver, each once, in report order."""
    asked: list[Question] = []
    for server in want.servers:
        asked += [(server.hostname + ".", "A"), (server.hostname + ".", "AAAA")]
        asked += [(reverse_name(a), "PTR") for a in server.addresses]
    for domain in want.domains:
        asked += [(domain.fqdn, "MX")] if want.hostname else []
        asked.append((domain.fqdn, "TXT"))
        asked += [(f"{selector}._domainkey.{domain.fqdn}", "TXT") for selector, _ in domain.dkim]
        asked.append((f"_dmarc.{domain.fqdn}", "TXT"))
        if domain.mta_sts is not None:
            asked.append((f"_mta-sts.{domain.fqdn}", "TXT"))
        if domain.tls_rpt is not None:
            asked.append((f"_smtp._tls.{domain.fqdn}", "TXT"))
    return list(dict.fromkeys(asked))
