"""What a probe checks and what it found: plain values, no network.

``ProbeSpec`` says which endpoints to reach, which hostname they must name,
which certificates they may present and which RCPT answers to expect;
``probe.smtp`` runs it. ``endpoints_from_config`` reads the listen addresses
of chasquid.conf; ``leaf_fingerprint`` names the certificate on disk.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from gitops_mail.errors import InvalidConfig

SYSTEMD_PORTS = (25, 587, 465)  # what the Debian socket units listen on
_PORT_NAMES = {"smtp": 25, "submission": 587, "submissions": 465, "smtps": 465}
_BEGIN, _END = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
_PEM_CERT = re.compile(re.escape(_BEGIN) + rb".*?" + re.escape(_END), re.DOTALL)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ProbeSpec:
    hostname: str  # the banner and EHLO reply must name it
    smtp: Endpoint | None  # port 25 role: STARTTLS, then the RCPT checks
    submission: Endpoint | None  # port 587 role: STARTTLS, AUTH only after it
    submission_tls: Endpoint | None  # port 465 role: TLS on connect, AUTH offered
    fingerprints: frozenset[str]  # SHA-256 hex of each leaf certificate on disk
    rcpt: tuple[tuple[str, bool], ...] = ()  # (address, should be accepted) on smtp


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    checks: tuple[Check, ...]
    duration_ms: float
    cancelled: bool = False  # the caller stopped the wait: not a verdict on the server

    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)


def leaf_fingerprint(pem_chain: bytes) -> str:
    """SHA-256 (hex) of the first certificate's DER in a PEM chain: the leaf chasquid serves."""
    match = _PEM_CERT.search(pem_chain)
    hint = "the file must hold PEM certificates, the server's own first"
    if match is None:
        raise InvalidConfig("no PEM certificate found", hint)
    body = match.group()[len(_BEGIN) : -len(_END)]
    try:
        der = base64.b64decode(b"".join(body.split()), validate=True)
    except binascii.Error:
        der = b""
    if not der.startswith(b"\x30"):  # a DER certificate is an ASN.1 SEQUENCE
        raise InvalidConfig("the first PEM certificate cannot be decoded", hint)
    return hashlib.sha256(der).hexdigest()


def endpoints_from_config(
    smtp_address: Sequence[str],
    submission_address: Sequence[str],
    submission_over_tls_address: Sequence[str],
) -> tuple[Endpoint | None, Endpoint | None, Endpoint | None]:
    """Where to probe, from chasquid.conf's listen lists: the first address of each.

    ``systemd`` is socket activation on the standard port, reached on
    127.0.0.1; an unspecified host (``:25``, ``0.0.0.0``, ``[::]``) is reached
    on the loopback address of its family; an empty list is not probed.
    """
    lists = (smtp_address, submission_address, submission_over_tls_address)
    smtp, submission, tls = (
        _listen_endpoint(values, port) for values, port in zip(lists, SYSTEMD_PORTS, strict=True)
    )
    return smtp, submission, tls


def _listen_endpoint(values: Sequence[str], systemd_port: int) -> Endpoint | None:
    if not values:
        return None
    address = values[0]
    if address == "systemd":
        return Endpoint("127.0.0.1", systemd_port)
    host, sep, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    number = _PORT_NAMES.get(port) or (int(port) if port.isascii() and port.isdigit() else 0)
    if not sep or not 0 < number < 65536:
        raise InvalidConfig(f'cannot probe listen address "{address}": it has no fixed port')
    with contextlib.suppress(ValueError):
        if host == "" or ipaddress.ip_address(host).is_unspecified:
            host = "::1" if ":" in host else "127.0.0.1"
    return Endpoint(host, number)
