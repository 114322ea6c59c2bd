"""Where acme.sh, certbot and explicit paths keep a certificate, and what to tell a user
whose source is not where or what it should be.

acme.sh (``_initpath`` in acme.sh): ``$CERT_HOME/<domain>`` for an RSA key,
``<domain>_ecc`` for an ECDSA one, holding ``fullchain.cer`` and
``<domain>.key``. certbot: ``/etc/letsencrypt/live/<name>/fullchain.pem`` and
``privkey.pem``, symlinks into ``../../archive/<name>/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gitops_mail.core.manifest.model import MANIFEST_PATH, CertificateSource

ACME_ECC_SUFFIX = "_ecc"  # acme.sh's ECC_SUFFIX
PEM_CHAIN = (
    "the fullchain file must hold the server's certificate, then its intermediates, "
    "each between -----BEGIN CERTIFICATE----- and -----END CERTIFICATE-----"
)
UNREADABLE = "check its permissions: the user running gitops-mail must be able to read it"


def source_paths(source: CertificateSource) -> tuple[Path, Path]:
    """The (fullchain, key) files of a source, without touching the disk."""
    if source.kind == "files":
        return Path(source.fullchain or ""), Path(source.key or "")
    directory = Path(source.directory or "")
    if source.kind == "certbot":
        return directory / "fullchain.pem", directory / "privkey.pem"
    return directory / "fullchain.cer", directory / f"{acme_domain(directory)}.key"


def acme_domain(directory: Path) -> str:
    """The main domain of an acme.sh directory: ``mail.example.com_ecc`` -> ``mail.example.com``."""
    return directory.name.removesuffix(ACME_ECC_SUFFIX)


def where(source: CertificateSource) -> str:
    return f"the {source.kind} entry at {MANIFEST_PATH}:{source.line}"


def fix(source: CertificateSource) -> str:
    return f"check {where(source)}"


def directory(source: CertificateSource, path: Path, may_look: Callable[[Path], bool]) -> str:
    """What to say of a missing directory; ``may_look``: whether the policy lets us look
    at a place (an acme.sh ``_ecc`` sibling)."""
    if source.kind == "certbot":
        return (
            f"fix {where(source)}: certbot keeps certificates in /etc/letsencrypt/live/<name> "
            "(certbot certificates lists them)"
        )
    ecc = path.with_name(path.name + ACME_ECC_SUFFIX)
    if may_look(ecc) and ecc.is_dir():
        return f"acme.sh keeps an ECDSA certificate in {ecc}: fix {where(source)}"
    return (
        f"fix {where(source)}: acme.sh keeps a certificate in ~/.acme.sh/<domain>, "
        "or <domain>_ecc for an ECDSA key (acme.sh --list lists them)"
    )


def missing(source: CertificateSource, role: str) -> str:
    domain = acme_domain(Path(source.directory or ""))
    if source.kind == "acme_sh" and role == "key":
        return (
            f"acme.sh names the key after the certificate's main domain, {domain}.key: "
            f"check {where(source)}"
        )
    if source.kind == "acme_sh":
        return (
            "acme.sh writes fullchain.cer when it issues the certificate: "
            f"issue it (acme.sh --issue -d {domain}) or fix {where(source)}"
        )
    if source.kind == "certbot":
        return (
            "certbot keeps fullchain.pem and privkey.pem in its live directory: "
            f"fix {where(source)}"
        )
    return f"install the {role} file there, or fix {where(source)}"


def link(source: CertificateSource) -> str:
    if source.kind == "certbot":
        return "certbot update_symlinks repairs the live directory's links"
    return f"point the link at an existing file, or fix {where(source)}"


def swapped(source: CertificateSource) -> str:
    if source.kind == "files":
        return f"the fullchain and key paths look swapped: fix {where(source)}"
    return f"the files look swapped or overwritten by hand: {renew(source)}"


def mismatch(source: CertificateSource) -> str:
    if source.kind == "files":
        return f"use the key generated with this certificate: fix {where(source)}"
    return f"the key and the certificate come from different issuances: {renew(source)}"


def renew(source: CertificateSource) -> str:
    if source.kind == "acme_sh":
        domain = acme_domain(Path(source.directory or ""))
        ecc = " --ecc" if (source.directory or "").endswith(ACME_ECC_SUFFIX) else ""
        return f"renew it with acme.sh --renew -d {domain}{ecc} --force, and check its cron job"
    if source.kind == "certbot":
        name = Path(source.directory or "").name
        return (
            f"renew it with certbot renew --cert-name {name} --force-renewal, and check its timer"
        )
    return f"install a renewed certificate and its key at {source.fullchain} and {source.key}"
