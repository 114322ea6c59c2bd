"""The certificates installed in chasquid's config dir: ``certs/<name>/fullchain.pem``.

What chasquid serves after its next start, read back as ``CertFacts`` (its
leaf: fingerprint, expiry, names, issuer) for the plan's renewals, ``status``
and the metrics. Only the chain is read, never the key. A file that is missing
or holds no certificate is simply not there: the apply that installs the
next one says what is wrong with its source.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from gitops_mail.core.plan.certs import CertFacts
from gitops_mail.host.certs.source import dns_names

CERTS_DIR = "certs"
CHAIN = "fullchain.pem"
MAX_CHAIN = 1 << 20  # as the sources: a chain is a few kB


def leaf(config_dir: Path, name: str) -> CertFacts | None:
    """The leaf installed for certificate ``name``; None when there is none to read."""
    path = config_dir / CERTS_DIR / name / CHAIN
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CHAIN + 1)
    except OSError:
        return None
    if len(data) > MAX_CHAIN:
        return None
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        return None
    return CertFacts(
        name=name,
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
        not_after=cert.not_valid_after_utc,
        names=dns_names(cert),
        issuer=_issuer(cert),
    )


def every_leaf(config_dir: Path) -> list[CertFacts]:
    """Each certificate installed, by name."""
    try:
        names = sorted(p.name for p in (config_dir / CERTS_DIR).iterdir() if p.is_dir())
    except OSError:
        return []
    found = (leaf(config_dir, name) for name in names)
    return [facts for facts in found if facts is not None]


def _issuer(cert: x509.Certificate) -> str:
    common = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = common[0].value if common else None
    return value if isinstance(value, str) else cert.issuer.rfc4514_string()
