"""``status``'s certificates: each one installed in chasquid's config dir, with its
names, issuer, expiry, source, and whether chasquid serves what is on disk.

What is served is fetched as ``check`` fetches it (``host.probe.client``: each
listening port, SNI = the hostname of the live chasquid.conf); a certificate
that does not cover that hostname is served only to clients asking for its
own names, which ``status`` does not ask. A certificate expiring in less than
``WARN_DAYS`` days gets a warning line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gitops_mail.core.plan.certs import CertFacts, short, source_text
from gitops_mail.core.state import load_state
from gitops_mail.errors import GitopsMailError
from gitops_mail.git import read as gitread
from gitops_mail.host.certs import installed
from gitops_mail.host.certs.source import covers
from gitops_mail.host.settings import HostSettings

WARN_DAYS = 14
SERVED_TIMEOUT = 3.0  # seconds per port: chasquid on this host answers in milliseconds
PORTS = {"smtp": "25", "submission": "587", "submission_tls": "465"}


@dataclass(frozen=True)
class Served:
    """What chasquid's ports present for its hostname: role -> leaf fingerprint (or None)."""

    hostname: str | None
    by_role: dict[str, str | None]
    error: str = ""  # why nothing could be asked


@dataclass(frozen=True)
class CertStatus:
    facts: CertFacts
    source: str
    days_left: float
    served_on: tuple[str, ...]  # the ports presenting this very leaf
    served_same: bool | None  # every port presents it; None: not known, or not for the hostname
    served_text: str

    def json(self) -> dict[str, object]:
        f = self.facts
        return {
            "name": f.name,
            "names": list(f.names),
            "issuer": f.issuer,
            "not_after": f.not_after.isoformat(),
            "days_left": round(self.days_left, 1),
            "source": self.source,
            "fingerprint": f.fingerprint,
            "served_on": list(self.served_on),
            "served_equals_disk": self.served_same,
        }

    def lines(self) -> list[str]:
        f, until = self.facts, f"{self.facts.not_after:%Y-%m-%d}"
        lines = [
            f"cert:     {f.name}: {', '.join(f.names) or 'no DNS names'}; issuer {f.issuer}; "
            f"expires {until} ({_days(self.days_left)}); source {self.source}; "
            f"{self.served_text}"
        ]
        if self.days_left < WARN_DAYS:
            lines.append(
                f"cert:     warning: {f.name} {_days(self.days_left)} ({until}): renew it "
                "(acme.sh or certbot), the daemon installs the renewed files"
            )
        return lines


def certificate_status(settings: HostSettings, applied: str | None) -> list[CertStatus]:
    config_dir = settings.chasquid.config_dir
    leaves = installed.every_leaf(config_dir)
    if not leaves:
        return []
    sources = _sources(settings, applied)
    served = _served(config_dir)
    now = datetime.now(UTC)
    return [
        _status(f, sources.get(f.name, "(not in the live revision)"), served, now) for f in leaves
    ]


def _status(facts: CertFacts, source: str, served: Served, now: datetime) -> CertStatus:
    days = (facts.not_after - now).total_seconds() / 86400
    on = tuple(PORTS[r] for r, fp in served.by_role.items() if fp == facts.fingerprint)
    if served.error:
        return CertStatus(facts, source, days, on, None, f"served: not known ({served.error})")
    hostname = served.hostname or ""
    if not covers(facts.names, hostname):
        text = f"served to clients asking for its names only (not for {hostname})"
        return CertStatus(facts, source, days, on, None, text)
    if on and len(on) == len(served.by_role):
        return CertStatus(facts, source, days, on, True, f"served on {_ports(on)}: as on disk")
    others = sorted({fp for fp in served.by_role.values() if fp and fp != facts.fingerprint})
    elsewhere = ", ".join(f"SHA256 {short(fp)}" for fp in others) or "nothing"
    text = (
        f"NOT served as on disk: chasquid serves {elsewhere}"
        + (f" (this one on {_ports(on)} only)" if on else "")
        + "; `gitops-mail apply` restarts it"
    )
    return CertStatus(facts, source, days, on, False, text)


def _served(config_dir: Path) -> Served:
    from gitops_mail.apply.liveproof import spec_from_disk  # noqa: PLC0415 - TLS, only here
    from gitops_mail.host.probe.client import served_certificates  # noqa: PLC0415

    try:
        spec = spec_from_disk(config_dir, None, None)
    except (GitopsMailError, OSError) as exc:
        return Served(None, {}, getattr(exc, "message", None) or str(exc))
    found = served_certificates(spec, timeout=SERVED_TIMEOUT)
    if not found:
        return Served(spec.hostname, {}, "chasquid.conf names no port to ask")
    by_role = {s.role: hashlib.sha256(s.der).hexdigest() if s.der else None for s in found}
    return Served(spec.hostname, by_role)


def _sources(settings: HostSettings, applied: str | None) -> dict[str, str]:
    """Where each certificate of the live revision comes from (its manifest entry)."""
    if applied is None:
        return {}
    try:
        state = load_state(gitread.read_revision(settings.repo, applied, limits=settings.limits))
    except GitopsMailError:
        return {}
    entries = state.manifest.certificates if state.manifest else ()
    return {c.name: source_text(c) for c in entries}


def _days(days: float) -> str:
    if days < 0:
        return f"expired {-days:.0f} days ago"
    return f"expires in {days:.0f} days" if days >= 1 else "expires within a day"


def _ports(ports: tuple[str, ...]) -> str:
    return ", ".join(ports[:-1]) + f" and {ports[-1]}" if len(ports) > 1 else ports[0]
