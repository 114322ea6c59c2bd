"""DKIM public records (pure): the TXT value of a key, and the keys a zone publishes.

A DKIM key is known to the repo by its public half only: ``PublicKey(k, p)``,
the ``k=`` and ``p=`` tags of its ``<selector>._domainkey`` TXT record (RFC
6376 section 3.6.1; ``p=`` is the base64 DER SubjectPublicKeyInfo for RSA
and the raw 32-byte key for ed25519, RFC 8463). The server's key store makes
the keys; the daemon commits their records back in ``dns/<domain>.zone``;
``published_keys`` reads them back from that file, so a checkout (plan,
validate, ``gitops-mail dns``) knows what DNS should publish without the
server.

The zone reader understands the lines ``zone`` writes (one record per line,
quoted strings), not zone files in general: it only ever reads our own
output.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

ALGORITHMS: Mapping[str, tuple[str, int]] = {
    "rsa-2048": ("rsa", 2048),
    "rsa-3072": ("rsa", 3072),
    "rsa-4096": ("rsa", 4096),
    "ed25519": ("ed25519", 256),
}
DEFAULT_ALGORITHM = "rsa-2048"
DOMAINKEY = "_domainkey"

_RECORD = re.compile(
    r"^(?P<selector>[A-Za-z0-9_-]+)\." + DOMAINKEY + r'\s+IN\s+TXT\s+(?P<strings>".*")\s*$'
)
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


class PublicKey(NamedTuple):
    """The public half of a DKIM key as DNS publishes it."""

    k: str  # "rsa" or "ed25519"
    p: str  # base64, no spaces


Keys = Mapping[tuple[str, str], PublicKey]  # (domain, selector) -> public key


def key_type(algorithm: str) -> str:
    """``rsa`` or ``ed25519`` for a manifest algorithm name."""
    return ALGORITHMS.get(algorithm, ALGORITHMS[DEFAULT_ALGORITHM])[0]


def record_owner(selector: str) -> str:
    """The owner name under the domain's origin: ``s2026._domainkey``."""
    return f"{selector}.{DOMAINKEY}"


def txt_value(key: PublicKey) -> str:
    """``v=DKIM1; k=rsa; p=...``: the record a verifier fetches."""
    return f"v=DKIM1; k={key.k}; p={key.p}"


def parse_value(text: str) -> PublicKey | None:
    """The key of a DKIM TXT value (tags in any order, spaces ignored); None if none."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        if eq:
            tags[name.strip().lower()] = "".join(value.split())
    if tags.get("v", "DKIM1") != "DKIM1" or not tags.get("p"):
        return None
    return PublicKey(tags.get("k", "rsa"), tags["p"])


def published_keys(domain: str, zone: bytes | None) -> dict[str, PublicKey]:
    """Selector -> key for the DKIM records of a ``dns/<domain>.zone`` we wrote."""
    if zone is None:
        return {}
    found: dict[str, PublicKey] = {}
    for line in zone.decode("ascii", "replace").splitlines():
        match = _RECORD.match(line)
        if match is None:
            continue
        key = parse_value(_unquote(match["strings"]))
        if key is not None:
            found[match["selector"].lower()] = key
    return found


def _unquote(strings: str) -> str:
    """The character-strings of a TXT rdata, joined (``\\"``, ``\\\\`` and ``\\DDD`` undone)."""
    joined = "".join(_STRING.findall(strings))
    return re.sub(r"\\(\d{3}|.)", _unescape, joined)


def _unescape(match: re.Match[str]) -> str:
    escaped = match[1]
    return chr(int(escaped)) if escaped.isdigit() else escaped
