"""Certificates for the renewal tests, issued by the session's test CA (trustme), and what
chasquid serves on 465, and how acme.sh, certbot and plain files renew them on disk.

``Issued`` holds the PEM bytes and the leaf's SHA-256; ``served_465(box)``
is the leaf chasquid presents on submission over TLS ("" while it restarts).
``Layout`` writes a certificate where a tool keeps it: acme.sh (ECC
``<domain>_ecc/`` or RSA ``<domain>/``, ``fullchain.cer`` and
``<domain>.key`` rewritten in place), certbot (``live/<name>/*.pem`` links
into ``../../archive/<name>/*N.pem``, a renewal writes ``N+1`` and moves the
links) or two plain files rewritten in place.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme
from apply_fixtures import Sandbox
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

HOSTNAME = "mail.example.test"


@dataclass(frozen=True)
class Issued:
    fullchain: bytes
    leaf: bytes
    key: bytes
    fingerprint: str  # SHA-256 (hex) of the leaf's DER
    not_after: datetime
    ca: bytes  # the issuer's certificate (PEM)


def issue(
    ca: trustme.CA,
    *names: str,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    rsa: bool = False,
) -> Issued:
    """A leaf for ``names`` (default: the hostname and 127.0.0.1)."""
    names = names or (HOSTNAME, "127.0.0.1")
    leaf = ca.issue_cert(
        *names,
        common_name=names[0],
        not_before=not_before,
        not_after=not_after,
        key_type=trustme.KeyType.RSA if rsa else trustme.KeyType.ECDSA,
    )
    chain = b"".join(pem.bytes() for pem in leaf.cert_chain_pems)
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    return Issued(
        fullchain=chain,
        leaf=leaf.cert_chain_pems[0].bytes(),
        key=leaf.private_key_pem.bytes(),
        fingerprint=hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
        not_after=cert.not_valid_after_utc,
        ca=ca.cert_pem.bytes(),
    )


def expired(ca: trustme.CA) -> Issued:
    now = datetime.now(UTC)
    return issue(ca, not_before=now - timedelta(days=90), not_after=now - timedelta(days=1))


def served_465(box: Sandbox) -> str:
    """SHA-256 of the leaf chasquid presents on 465 (TLS on connect); "" while it restarts."""
    context = ssl.create_default_context(cafile=str(box.ca_file))
    context.check_hostname = False
    try:
        with (
            socket.create_connection(("127.0.0.1", box.ports.submission_tls), timeout=10) as raw,
            context.wrap_socket(raw) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except OSError:
        return ""
    return hashlib.sha256(der or b"").hexdigest()


@dataclass
class Layout:
    """One certificate source as its tool writes it, below ``base`` (an allowed dir)."""

    kind: str  # acme-ecc | acme-rsa | certbot | files
    base: Path
    version: int = 0

    @property
    def rsa(self) -> bool:
        return self.kind == "acme-rsa"

    @property
    def directory(self) -> Path:
        if self.kind == "acme-ecc":
            return self.base / ".acme.sh" / f"{HOSTNAME}_ecc"
        if self.kind == "acme-rsa":
            return self.base / ".acme.sh" / HOSTNAME
        if self.kind == "certbot":
            return self.base / "letsencrypt" / "live" / HOSTNAME
        return self.base / "plain"

    def entry(self) -> str:
        """The manifest's source line(s) for this layout."""
        if self.kind.startswith("acme"):
            return f"    acme_sh: {self.directory}\n"
        if self.kind == "certbot":
            return f"    certbot: {self.directory}\n"
        where = self.directory
        return f"    files: {{fullchain: {where}/full.pem, key: {where}/key.pem}}\n"

    def write(self, cert: Issued) -> None:
        """Install or renew ``cert`` the way the tool does."""
        self.version += 1
        if self.kind == "certbot":
            self._certbot(cert)
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.kind.startswith("acme"):  # acme.sh copies into the same files
            (self.directory / f"{HOSTNAME}.key").write_bytes(cert.key)
            (self.directory / f"{HOSTNAME}.cer").write_bytes(cert.leaf)
            (self.directory / "ca.cer").write_bytes(cert.ca)
            (self.directory / "fullchain.cer").write_bytes(cert.fullchain)
            return
        (self.directory / "key.pem").write_bytes(cert.key)
        (self.directory / "full.pem").write_bytes(cert.fullchain)

    def _certbot(self, cert: Issued) -> None:
        """archive/<name>/{cert,chain,fullchain,privkey}N.pem, then each live link moved
        to them (relative links, as certbot's storage makes them)."""
        archive = self.base / "letsencrypt" / "archive" / HOSTNAME
        archive.mkdir(parents=True, exist_ok=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        files = {
            "cert": cert.leaf,
            "chain": cert.ca,
            "fullchain": cert.fullchain,
            "privkey": cert.key,
        }
        for kind, data in files.items():
            target = archive / f"{kind}{self.version}.pem"
            target.write_bytes(data)
            if kind == "privkey":
                target.chmod(0o600)
        for kind in files:
            link = self.directory / f"{kind}.pem"
            if link.is_symlink():
                link.unlink()
            os.symlink(f"../../archive/{HOSTNAME}/{kind}{self.version}.pem", link)


def manifest_for(box: Sandbox, layout: Layout) -> str:
    """The sandbox's manifest with its certificate entry reading ``layout``."""
    lines = box.manifest().splitlines(keepends=True)
    return "".join(layout.entry() if line.startswith("    files: ") else line for line in lines)
