"""Never worse: whether a certificate from its source may replace the one chasquid serves.

A source's certificate is installed only when it loads (parses, its key
matches, its chain is in order, it has not expired: ``source.load_certificate``),
is valid already (not before its ``notBefore``), covers the name of its entry
(for the entry named after chasquid's hostname, the hostname; a name without
a dot is not a DNS name and is not checked) unless the entry says
``allow_name_mismatch: true``, and, while the live certificate is still
valid, covers every name the live one covers. ``refusal`` says what is wrong,
as a ``CertificateError`` (as ``load_certificate`` does); the caller decides
what a refusal means: with a live certificate it stays served, with none (a
first install) the revision cannot be applied.

The live certificate is read from chasquid's tree (``certs/<name>/``), as
gitops-mail installed it; its bytes are kept as they are, so serving it again
changes nothing in the tree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gitops_mail.core import domainname
from gitops_mail.core.certs import CertMaterial
from gitops_mail.core.manifest.model import CertificateSource
from gitops_mail.host.certs import layout as hints
from gitops_mail.host.certs.layout import source_paths
from gitops_mail.host.certs.source import CertificateError, covers, dns_names, files_read, when


def live_material(config_dir: Path, name: str) -> CertMaterial | None:
    """The certificate chasquid's tree holds for ``name``, or None when there is none
    it could serve (missing, unreadable, not PEM)."""
    where = config_dir / "certs" / name
    try:
        chain = (where / "fullchain.pem").read_bytes()
        key = (where / "privkey.pem").read_bytes()
        leaf = x509.load_pem_x509_certificates(chain)[0]
    except (OSError, ValueError, IndexError):
        return None
    return CertMaterial(
        name=name,
        fullchain=chain,
        key=key,
        fingerprint=leaf.fingerprint(hashes.SHA256()).hex(),
        names=dns_names(leaf),
        not_after=leaf.not_valid_after_utc,
        source_files=(),
        not_before=leaf.not_valid_before_utc,
    )


def refusal(
    source: CertificateSource,
    new: CertMaterial,
    live: CertMaterial | None,
    *,
    now: datetime | None = None,
) -> CertificateError | None:
    """Why ``new``, loaded from ``source``, may not be served in place of ``live``
    (None: it may)."""
    now = now or datetime.now(UTC)
    chain_path = source_paths(source)[0]
    if new.not_before is not None and new.not_before > now:
        what = f"{chain_path} is not valid before {when(new.not_before)}"
        hint = "check this host's clock, or wait until the certificate is valid"
        return CertificateError(source, chain_path, "cert.not-yet-valid", what, hint)
    missing = [n for n in required_names(source) if not covers(new.names, n)]
    if missing and not source.allow_name_mismatch:
        return _uncovered(source, chain_path, new, missing, "cert.hostname")
    if live is not None and live.not_after > now and live.fingerprint != new.fingerprint:
        lost = [n for n in live.names if not covers(new.names, n)]
        if lost:
            return _uncovered(source, chain_path, new, lost, "cert.fewer-names")
    return None


def required_names(source: CertificateSource) -> tuple[str, ...]:
    """The names the entry's certificate must cover: its own name, if a DNS name."""
    name = domainname.to_ascii(source.name) or source.name.lower()
    return (name,) if "." in name else ()


def source_files(source: CertificateSource) -> tuple[str, ...]:
    """The files a source is read from, as named and as resolved: a change to any of
    them is a renewal to try."""
    return files_read(*source_paths(source))


def _uncovered(
    source: CertificateSource, path: Path, new: CertMaterial, names: list[str], code: str
) -> CertificateError:
    listed = ", ".join(new.names) or "no DNS names"
    wanted = ", ".join(names)
    if code == "cert.fewer-names":
        what = (
            f"{path} covers fewer names than the live certificate: not {wanted} (it names {listed})"
        )
        hint = f"issue it for every name the live one has ({wanted} too): {hints.renew(source)}"
    else:
        what = f"{path} does not cover {wanted} (it names {listed})"
        hint = (
            f"issue the certificate for {wanted}: clients check the name against it "
            "(on a test server, `allow_name_mismatch: true` on the entry installs it anyway)"
        )
    return CertificateError(source, path, code, what, hint)
