"""The certificates chasquid serves, judged: the one on disk, for the hostname, in date."""

from __future__ import annotations

import hashlib
import ssl
from datetime import UTC, datetime, timedelta

import trustme

from gitops_mail.host.probe.client import Served
from gitops_mail.host.probe.served import describe, findings
from gitops_mail.host.probe.spec import Endpoint

NOW = datetime(2030, 6, 1, tzinfo=UTC)
EP = Endpoint("127.0.0.1", 465)


def leaf(*names: str, days: float = 90) -> bytes:
    ca = trustme.CA()
    cert = ca.issue_cert(
        *names, not_before=NOW - timedelta(days=30), not_after=NOW + timedelta(days=days)
    )
    return ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())


def judge(der: bytes | None, *, on_disk: bool = True, error: str = "") -> tuple[str, str, str]:
    disk = frozenset({hashlib.sha256(der).hexdigest()} if der and on_disk else set())
    (found,) = findings([Served("submission_tls", EP, der, error)], "mail.example.com", disk, NOW)
    assert (found.check, found.subject, found.name) == ("tls", "465 (TLS)", "127.0.0.1:465")
    return found.status, found.message, found.hint


def test_a_good_certificate() -> None:
    assert judge(leaf("mail.example.com"))[:2] == (
        "ok",
        "the certificate on disk, for mail.example.com, valid until 2030-08-30",
    )


def test_a_wildcard_covers_the_hostname() -> None:
    assert judge(leaf("*.example.com"))[0] == "ok"


def test_under_fourteen_days_is_a_warning() -> None:
    assert judge(leaf("mail.example.com", days=13.5)) == (
        "warning",
        "expires on 2030-06-14, in less than 14 days",
        "renew the certificate, then apply: chasquid serves what is in certs/ after a restart",
    )


def test_each_thing_wrong_is_named_in_one_finding() -> None:
    der = leaf("other.example.com", days=-2)
    served = hashlib.sha256(der).hexdigest()[:16]
    status, message, _ = judge(der, on_disk=False)
    assert (status, message) == (
        "error",
        f"not the certificate on disk (serves sha256 {served}); does not cover"
        " mail.example.com (names: other.example.com); expired on 2030-05-30",
    )


def test_a_port_that_serves_nothing() -> None:
    assert judge(None, error="[Errno 111] Connection refused") == (
        "error",
        "no certificate: [Errno 111] Connection refused",
        "check that chasquid runs",
    )


def test_describe_for_send_test() -> None:
    text = describe(leaf("mail.example.com"))
    assert text.endswith("(mail.example.com; valid until 2030-08-30)")
