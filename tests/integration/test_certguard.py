"""``host.certs.guard``: what a certificate must be to replace the live one (never worse)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitops_mail.core.certs import CertMaterial
from gitops_mail.core.manifest.model import CertificateSource
from gitops_mail.host.certs import guard

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
HOST = "mail.example.com"


def source(name: str = HOST, *, allow: bool = False) -> CertificateSource:
    return CertificateSource(name, "files", None, "/c/full.pem", "/c/key.pem", 4, allow)


def material(*names: str, fingerprint: str = "aa", days: int = 90, born: int = -1) -> CertMaterial:
    return CertMaterial(
        name=HOST,
        fullchain=b"",
        key=b"",
        fingerprint=fingerprint,
        names=names,
        not_after=NOW + timedelta(days=days),
        source_files=(),
        not_before=NOW + timedelta(days=born),
    )


def refused(
    src: CertificateSource, new: CertMaterial, live: CertMaterial | None
) -> tuple[str, ...]:
    error = guard.refusal(src, new, live, now=NOW)
    return () if error is None else (error.code, error.message, error.hint)


def test_a_certificate_that_does_not_cover_its_name_is_refused_unless_allowed() -> None:
    assert refused(source(), material("wrong.example"), None) == (
        "cert.hostname",
        f"certificate '{HOST}': /c/full.pem does not cover {HOST} (it names wrong.example)",
        f"issue the certificate for {HOST}: clients check the name against it (on a test "
        "server, `allow_name_mismatch: true` on the entry installs it anyway)",
    )
    assert refused(source(allow=True), material("wrong.example"), None) == ()
    assert refused(source("main"), material("wrong.example"), None) == ()  # not a DNS name


def test_a_wildcard_covers_the_name() -> None:
    assert refused(source(), material("*.example.com"), material(HOST, fingerprint="bb")) == ()


def test_a_renewal_covering_fewer_names_than_the_live_one_is_refused() -> None:
    live = material(HOST, "smtp.example.com", fingerprint="bb")

    assert refused(source(), material(HOST), live) == (
        "cert.fewer-names",
        f"certificate '{HOST}': /c/full.pem covers fewer names than the live certificate: "
        f"not smtp.example.com (it names {HOST})",
        "issue it for every name the live one has (smtp.example.com too): install a renewed "
        "certificate and its key at /c/full.pem and /c/key.pem",
    )
    assert refused(source(), material(HOST, "smtp.example.com", "new.example.com"), live) == ()


def test_an_expired_live_certificate_does_not_hold_its_names_against_a_valid_renewal() -> None:
    live = material(HOST, "smtp.example.com", fingerprint="bb", days=-1)

    assert refused(source(), material(HOST), live) == ()


def test_a_certificate_not_valid_yet_is_refused() -> None:
    code, message, _ = refused(source(), material(HOST, born=2), material(HOST, fingerprint="bb"))

    assert (code, message) == (
        "cert.not-yet-valid",
        f"certificate '{HOST}': /c/full.pem is not valid before 2026-12-10 12:00 UTC",
    )


def test_the_live_certificate_is_read_from_chasquids_tree(tmp_path: Path) -> None:
    assert guard.live_material(tmp_path, HOST) is None
    where = tmp_path / "certs" / HOST
    where.mkdir(parents=True)
    (where / "fullchain.pem").write_bytes(b"not PEM\n")
    (where / "privkey.pem").write_bytes(b"key\n")

    assert guard.live_material(tmp_path, HOST) is None


@pytest.mark.parametrize(
    ("name", "wanted"),
    [
        (HOST, (HOST,)),
        ("MAIL.Example.COM.", (HOST,)),
        ("bücher.example", ("xn--bcher-kva.example",)),
    ],
)
def test_the_names_an_entry_must_cover(name: str, wanted: tuple[str, ...]) -> None:
    assert guard.required_names(source(name)) == wanted
