"""Certificates in a plan: a renewal (new material, same manifest entry) is a change too.

The manifest names where a certificate comes from; what chasquid serves is the
material found there, which acme.sh or certbot replace on their own. A
renewal therefore shows up in no revision: it is told from the leaf installed
in the config dir (``CertFacts``, read by ``host.certs.installed``) and the
leaf the source holds now, and planned like any change:

    ~ certificate mail.example.com renewed: SHA256 ab12cd34… → cd34ef56…, expires
      2027-03-01 (was 2026-12-20)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from gitops_mail.core.certs import CertMaterial
from gitops_mail.core.manifest.model import CertificateSource
from gitops_mail.core.plan.model import WHY_CERTS, Action, Change, Plan

SHOWN_HEX = 8  # hex digits of a fingerprint shown to people (the JSON keeps all 64)


@dataclass(frozen=True)
class CertFacts:
    """A leaf certificate as people and metrics see it; no key, nothing secret."""

    name: str
    fingerprint: str  # sha256 hex of the leaf's DER
    not_after: datetime
    names: tuple[str, ...] = ()  # DNS names of its subjectAltName
    issuer: str = ""  # the issuer's common name (or its whole name)


def facts_of(material: CertMaterial) -> CertFacts:
    return CertFacts(material.name, material.fingerprint, material.not_after, material.names)


def source_text(cert: CertificateSource) -> str:
    """Where a manifest entry reads its certificate: ``acme_sh DIR``, ``files CHAIN, KEY``."""
    if cert.kind == "files":
        return f"files {cert.fullchain}, {cert.key}"
    return f"{cert.kind} {cert.directory}"


def short(fingerprint: str) -> str:
    return f"{fingerprint[:SHOWN_HEX]}…"


def renewal_text(old: CertFacts, new: CertFacts) -> str:
    """``SHA256 ab12cd34… → cd34ef56…, expires 2027-03-01 (was 2026-12-20)``."""
    was = f"{old.not_after:%Y-%m-%d}"
    expires = f"{new.not_after:%Y-%m-%d}"
    return f"SHA256 {short(old.fingerprint)} → {short(new.fingerprint)}, expires {expires}" + (
        f" (was {was})" if was != expires else " (as before)"
    )


def with_renewals(
    plan: Plan, installed: Mapping[str, CertFacts], new: Mapping[str, CertFacts]
) -> Plan:
    """``plan`` and a ``renewed`` change for each certificate whose source now holds
    another leaf than the one installed, unless the plan changes that entry already
    (a new source is a ``changed`` certificate, not a renewal)."""
    planned = {c.subject for c in plan.changes if c.area == "certificate"}
    renewed = tuple(
        _renewed(installed[name], facts)
        for name, facts in sorted(new.items())
        if name in installed
        and name not in planned
        and installed[name].fingerprint != facts.fingerprint
    )
    return replace(plan, changes=plan.changes + renewed) if renewed else plan


def _renewed(old: CertFacts, new: CertFacts) -> Change:
    return Change(
        "certificate",
        "renewed",
        new.name,
        old.fingerprint,
        new.fingerprint,
        Action.RESTART,
        WHY_CERTS,
        detail=renewal_text(old, new),
    )
