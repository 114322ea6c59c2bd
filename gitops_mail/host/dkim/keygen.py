"""Making and reading DKIM private keys with ``cryptography`` (imported when a key is made
or read, never on a pass that finds every key in the store).

Keys are kept as PKCS#8 ``PRIVATE KEY`` PEM, what chasquid >= 1.14 reads and
the managed post-data hook (dkimpy) signs with. The public half is the DNS
value: ``p=`` is the base64 DER SubjectPublicKeyInfo for RSA (RFC 6376) and
the raw 32-byte key for ed25519 (RFC 8463).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from gitops_mail.core.dns.dkim import ALGORITHMS, DEFAULT_ALGORITHM, PublicKey
from gitops_mail.errors import GitopsMailError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

RSA_EXPONENT = 65537
MIN_RSA_BITS = 1024


class UnusableKey(GitopsMailError):
    """A key that cannot be used for DKIM (its bytes are never in the message)."""


def generate(algorithm: str) -> tuple[bytes, PublicKey]:
    """A new key for ``algorithm`` (``rsa-2048``...``ed25519``): PKCS#8 PEM and public half."""
    from cryptography.hazmat.primitives.asymmetric import (  # noqa: PLC0415 - slow import
        ed25519,
        rsa,
    )

    kind, bits = ALGORITHMS.get(algorithm, ALGORITHMS[DEFAULT_ALGORITHM])
    key: PrivateKeyTypes
    if kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        key = rsa.generate_private_key(public_exponent=RSA_EXPONENT, key_size=bits)
    return _pkcs8(key), _public(key)


def from_pem(data: bytes) -> tuple[bytes, PublicKey]:
    """A PEM private key (PKCS#1 or PKCS#8, RSA or ed25519) as PKCS#8 PEM and public half."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - slow import

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UnusableKey(
            "the file holds no unencrypted PEM private key",
            "give the PEM file `gitops-mail dkim export` wrote (an RSA or ed25519 private key)",
        ) from exc
    _check_usable(key)
    return _pkcs8(key), _public(key)


def public_of(pem: bytes) -> PublicKey:
    """The public half of a stored key."""
    return from_pem(pem)[1]


def _check_usable(key: PrivateKeyTypes) -> None:
    from cryptography.hazmat.primitives.asymmetric import (  # noqa: PLC0415
        ed25519,
        rsa,
    )

    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= MIN_RSA_BITS:
        return
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return
    raise UnusableKey(
        "the key is neither RSA (1024 bits or more) nor ed25519: DKIM cannot sign with it",
        "export the key from the old host with `gitops-mail dkim export`",
    )


def _pkcs8(key: PrivateKeyTypes) -> bytes:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public(key: PrivateKeyTypes) -> PublicKey:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: PLC0415

    public = key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return PublicKey("ed25519", base64.b64encode(raw).decode())
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PublicKey("rsa", base64.b64encode(der).decode())
