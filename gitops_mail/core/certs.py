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
