"""Judge the certificates chasquid serves: the one on disk, covering the hostname, in date.

``findings`` turns what ``client.served_certificates`` fetched into one
``Finding`` per port (check ``tls``); ``describe`` puts a certificate in
words for ``send-test``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from cryptography import x509

from gitops_mail.core.dns.findings import ERROR, OK, WARNING, Finding
from gitops_mail.host.certs.source import covers, dns_names
from gitops_mail.host.probe.client import Served

EXPIRY_WARNING = timedelta(days=14)
PORTS = {"smtp": "25 (STARTTLS)", "submission": "587 (STARTTLS)", "submission_tls": "465 (TLS)"}
_RENEW = "renew the certificate, then apply: chasquid serves what is in certs/ after a restart"


def findings(
    served: Iterable[Served], hostname: str, on_disk: frozenset[str], now: datetime | None = None
) -> list[Finding]:
    moment = now or datetime.now(UTC)
    return [_finding(s, hostname, on_disk, moment) for s in served]


def _finding(served: Served, hostname: str, on_disk: frozenset[str], now: datetime) -> Finding:
    subject, where = PORTS.get(served.role, served.role), str(served.endpoint)
    if served.der is None:
        message = f"no certificate: {served.error}"
        return Finding("tls", subject, ERROR, message, where, hint="check that chasquid runs")
    status, message, hint = _judge(served.der, hostname, on_disk, now)
    return Finding("tls", subject, status, message, where, hint=hint)


def _judge(der: bytes, hostname: str, on_disk: frozenset[str], now: datetime) -> tuple[str, ...]:
    fingerprint = hashlib.sha256(der).hexdigest()
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        return ERROR, f"cannot read the certificate served: {exc}", ""
    names, until = dns_names(cert), cert.not_valid_after_utc
    problems = []
    if fingerprint not in on_disk:
        problems.append(f"not the certificate on disk (serves sha256 {fingerprint[:16]})")
    if not covers(names, hostname):
        problems.append(f"does not cover {hostname} (names: {', '.join(names) or 'none'})")
    if until <= now:
        problems.append(f"expired on {until:%Y-%m-%d}")
    if problems:
        return ERROR, "; ".join(problems), _RENEW if until <= now else _hint(fingerprint, on_disk)
    if until - now < EXPIRY_WARNING:
        return WARNING, f"expires on {until:%Y-%m-%d}, in less than 14 days", _RENEW
    return OK, f"the certificate on disk, for {hostname}, valid until {until:%Y-%m-%d}", ""


def _hint(fingerprint: str, on_disk: frozenset[str]) -> str:
    if fingerprint not in on_disk:
        return "restart chasquid (gitops-mail apply) so that it serves the certificate on disk"
    return "issue the certificate for the hostname chasquid.conf names"


def describe(der: bytes) -> str:
    """Subject, DNS names and expiry of a certificate, for people."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return "(cannot be read)"
    names = ", ".join(dns_names(cert)) or "no DNS names"
    until = f"valid until {cert.not_valid_after_utc:%Y-%m-%d}"
    return f"{cert.subject.rfc4514_string()} ({names}; {until})"
