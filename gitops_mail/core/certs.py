"""A certificate as chasquid gets it: a value read by ``host.certs``, rendered by ``render``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class CertMaterial:
    """One certificate as chasquid gets it: PEM chain (leaf first) and PKCS#8 PEM key.

    Both are re-encoded from what was parsed, so nothing else in the source
    files (a stray key beside the chain, text) reaches chasquid's tree. ``key``
    is left out of ``repr``. ``source_files`` are the paths read, as named and,
    where a symlink led elsewhere (certbot's archive), as resolved.
    """

    name: str
    fullchain: bytes
    key: bytes = field(repr=False)
    fingerprint: str  # sha256 hex of the leaf certificate's DER
    names: tuple[str, ...]  # DNS names in the leaf's subjectAltName, lower case
    not_after: datetime
    source_files: tuple[str, ...]
    not_before: datetime | None = None


@dataclass(frozen=True)
class CertNote:
    """What an apply did with one certificate entry: the one served before (``old_*``,
    empty when none was), the one served now (``new_*``) and, when the source's
    certificate was refused, why (``refused``: the live one stays, ``new_*`` is it)."""

    name: str
    old_fingerprint: str
    old_not_after: datetime | None
    new_fingerprint: str
    new_not_after: datetime | None
    refused: str = ""  # the reason, one line; empty when the source's certificate is served
    code: str = ""  # the refusal's stable problem code (cert.expired, cert.hostname, ...)

    @property
    def renewed(self) -> bool:
        """Another certificate replaces a live one."""
        return bool(self.old_fingerprint) and self.old_fingerprint != self.new_fingerprint
