"""Certificates named in the manifest, read from where the server keeps them.

A manifest entry points at an acme.sh directory (``fullchain.cer`` and
``<domain>.key``, the directory being ``<domain>`` or ``<domain>_ecc``), a
certbot live directory (``fullchain.pem`` and ``privkey.pem``, symlinks into
``../../archive`` that are followed) or two explicit files. ``load_certificate``
reads and checks one source and returns the chain and key chasquid gets as
``certs/<name>/{fullchain,privkey}.pem``; every failure is a
``CertificateError`` naming the certificate, the file and what is wrong.
Key bytes never appear in a message, a repr or a traceback.

Only paths this host's policy allows are touched (``allowed``): a path
outside ``policy.certificate_dirs``, as named or as resolved, is refused
before any stat or open, with the same words whether it exists or not.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gitops_mail.core.certs import CertMaterial
from gitops_mail.core.checks.policy import HINT, REFUSED
from gitops_mail.core.manifest.model import MANIFEST_PATH, CertificateSource
from gitops_mail.core.policy import HostPolicy
from gitops_mail.core.problems import Problem, error, warning
from gitops_mail.errors import GitopsMailError
from gitops_mail.host.certs import allowed as certpolicy
from gitops_mail.host.certs import layout as hints
from gitops_mail.host.certs.layout import source_paths

__all__ = [
    "CertificateError",
    "certificate_problems",
    "covers",
    "dns_names",
    "files_read",
    "load_certificate",
    "when",
]

MAX_FILE_SIZE = 1 << 20  # a chain or a key is a few kB; anything bigger is not one
EXPIRY_WARNING = timedelta(days=14)
UsableKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_USABLE_KEYS = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)
_KEY_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm)


class CertificateError(GitopsMailError):
    """A certificate source cannot be used; ``code`` is a stable problem code."""

    def __init__(
        self, source: CertificateSource, path: Path, code: str, what: str, hint: str
    ) -> None:
        super().__init__(f"certificate {source.name!r}: {what}", hint)
        self.name = source.name
        self.path = str(path)
        self.code = code
        self.line = source.line

    def problem(self) -> Problem:
        """The same finding, placed at the manifest entry that names the source."""
        return error(MANIFEST_PATH, self.line, self.code, self.message, self.hint)


def load_certificate(
    source: CertificateSource, *, policy: HostPolicy, now: datetime | None = None
) -> CertMaterial:
    """Read and check one source, if ``policy`` allows its paths; raise ``CertificateError``
    on the first thing wrong."""
    dirs = policy.certificate_dirs
    chain_path, key_path = source_paths(source)
    _check_allowed(source, dirs, chain_path, key_path)
    if source.kind != "files":
        _check_directory(source, dirs)
    chain = _load_chain(source, chain_path, _read(source, "fullchain", chain_path, dirs))
    key = _load_key(source, key_path, _read(source, "key", key_path, dirs))
    _check_pair(source, chain_path, key_path, chain, key)
    leaf = chain[0]
    if leaf.not_valid_after_utc <= (now or datetime.now(UTC)):
        what = f"{chain_path} expired on {when(leaf.not_valid_after_utc)}"
        raise CertificateError(source, chain_path, "cert.expired", what, hints.renew(source))
    return CertMaterial(
        name=source.name,
        fullchain=b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain),
        key=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        fingerprint=leaf.fingerprint(hashes.SHA256()).hex(),
        names=dns_names(leaf),
        not_after=leaf.not_valid_after_utc,
        source_files=files_read(chain_path, key_path),
        not_before=leaf.not_valid_before_utc,
    )


def certificate_problems(
    source: CertificateSource,
    material_or_error: CertMaterial | CertificateError,
    hostname: str | None,
    *,
    now: datetime | None = None,
) -> list[Problem]:
    """What to tell about a loaded source: its error, or warnings (expiring, hostname).

    Pass ``hostname`` for the certificate meant to serve chasquid's hostname,
    ``None`` to skip that check.
    """
    if isinstance(material_or_error, CertificateError):
        return [material_or_error.problem()]
    material, now = material_or_error, now or datetime.now(UTC)
    problems = []
    left, until = material.not_after - now, when(material.not_after)
    if left <= timedelta(0):
        message = f"certificate {source.name!r} expired on {until}"
        problems.append(
            error(MANIFEST_PATH, source.line, "cert.expired", message, hints.renew(source))
        )
    elif left <= EXPIRY_WARNING:
        days = f"{left.days} day{'' if left.days == 1 else 's'}" if left.days else "less than a day"
        message = f"certificate {source.name!r} expires in {days}, on {until}"
        hint = hints.renew(source)
        problems.append(warning(MANIFEST_PATH, source.line, "cert.expires-soon", message, hint))
    if hostname is not None and not covers(material.names, hostname):
        problems.append(_hostname_warning(source, material.names, hostname))
    return problems


def _hostname_warning(source: CertificateSource, names: tuple[str, ...], hostname: str) -> Problem:
    listed = ", ".join(names) or "no DNS names"
    message = (
        f"certificate {source.name!r} does not cover the hostname {hostname!r}: it names {listed}"
    )
    hint = f"issue the certificate for {hostname} too: clients check the hostname against it"
    return warning(MANIFEST_PATH, source.line, "cert.hostname", message, hint)


def covers(names: Iterable[str], hostname: str) -> bool:
    """Whether a certificate for ``names`` is valid for ``hostname``.

    A wildcard stands for exactly one whole left-most label (RFC 6125):
    ``*.example.com`` covers ``mail.example.com``, not ``example.com`` nor
    ``a.b.example.com``.
    """
    host = hostname.lower().rstrip(".")
    label, _, parent = host.partition(".")
    for name in (name.lower().rstrip(".") for name in names):
        if name == host or (label and parent and name == f"*.{parent}"):
            return True
    return False


def dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names in a certificate's subjectAltName, lower case, in order, once each."""
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    names = extension.value.get_values_for_type(x509.DNSName)
    return tuple(dict.fromkeys(name.lower() for name in names))


def _check_allowed(
    source: CertificateSource, dirs: Sequence[str], chain_path: Path, key_path: Path
) -> None:
    for what, path in certpolicy.named_paths(source, chain_path, key_path):
        if not certpolicy.allowed(path, dirs):
            raise _refused(source, what, path)


def _refused(source: CertificateSource, what: str, path: str) -> CertificateError:
    """The same words for every refused path: nothing about what is there, if anything."""
    hint = HINT.format(setting="certificate_dirs")
    return CertificateError(
        source, Path(path), "policy.certificate-dirs", f"{what} {path} {REFUSED}", hint
    )


def _check_directory(source: CertificateSource, dirs: Sequence[str]) -> None:
    directory = Path(source.directory or "")
    if directory.is_dir():
        return
    what = "does not exist" if not directory.exists() else "is not a directory"
    hint = hints.directory(source, directory, lambda path: certpolicy.allowed(str(path), dirs))
    raise CertificateError(source, directory, "cert.missing", f"directory {directory} {what}", hint)


def _read(source: CertificateSource, role: str, path: Path, dirs: Sequence[str]) -> bytes:
    """The bytes of one source file (symlinks followed, the file opened still inside
    ``dirs``), or a ``CertificateError``."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise _bad_file(source, role, path, "is not a regular file", hints.fix(source))
        with path.open("rb") as file:
            if not certpolicy.opened_allowed(file.fileno(), dirs):
                raise _refused(source, f"{role} file", certpolicy.named(source, role, path))
            data = file.read(MAX_FILE_SIZE + 1)
    except FileNotFoundError:
        raise _missing(source, role, path) from None
    except OSError as exc:
        what = f"cannot read {role} file {path}: {exc.strerror}"
        raise CertificateError(source, path, "cert.unreadable", what, hints.UNREADABLE) from None
    if len(data) > MAX_FILE_SIZE:
        raise _bad_file(source, role, path, "is larger than 1 MiB", hints.fix(source))
    if not data.strip():
        raise _bad_file(source, role, path, "is empty", hints.renew(source))
    return data


def _bad_file(
    source: CertificateSource, role: str, path: Path, what: str, hint: str
) -> CertificateError:
    return CertificateError(source, path, "cert.unreadable", f"{role} file {path} {what}", hint)


def _missing(source: CertificateSource, role: str, path: Path) -> CertificateError:
    if path.is_symlink():
        what = f"{role} file {path} is a broken symlink to {os.readlink(path)}"
        return CertificateError(source, path, "cert.missing", what, hints.link(source))
    what = f"{role} file {path} does not exist"
    return CertificateError(source, path, "cert.missing", what, hints.missing(source, role))


def _load_chain(source: CertificateSource, path: Path, data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        pass
    if _is_private_key(data):
        what, hint = f"{path} holds a private key, not a certificate", hints.swapped(source)
    elif b"-----BEGIN CERTIFICATE-----" in data:
        what, hint = f"{path} holds a certificate that cannot be parsed", hints.PEM_CHAIN
    else:
        what, hint = f"{path} holds no PEM certificate", hints.PEM_CHAIN
    raise CertificateError(source, path, "cert.not-pem", what, hint)


def _is_private_key(data: bytes) -> bool:
    try:
        serialization.load_pem_private_key(data, password=None)
    except TypeError:  # a key, encrypted
        return True
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def _load_key(source: CertificateSource, path: Path, data: bytes) -> UsableKey:
    """The private key; cryptography's own exceptions are dropped (``from None``)."""
    hint = "chasquid needs an unencrypted RSA, ECDSA or Ed25519 private key in PEM"
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        what = f"{path} holds a passphrase-protected private key"
        hint = "chasquid cannot use an encrypted key: decrypt it with openssl pkey"
        raise CertificateError(source, path, "cert.bad-key", what, hint) from None
    except _KEY_ERRORS:
        what = f"{path} holds no PEM private key"
        if _has_certificate(data):
            what, hint = f"{path} holds a certificate, not a private key", hints.swapped(source)
        raise CertificateError(source, path, "cert.bad-key", what, hint) from None
    if not isinstance(key, _USABLE_KEYS):
        kind = type(key).__name__.removesuffix("PrivateKey")
        what = f"{path} holds a {kind} key, which chasquid cannot use"
        raise CertificateError(source, path, "cert.bad-key", what, hint)
    return key


def _has_certificate(data: bytes) -> bool:
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        return False
    return True


def _check_pair(
    source: CertificateSource,
    chain_path: Path,
    key_path: Path,
    chain: list[x509.Certificate],
    key: UsableKey,
) -> None:
    """The key must belong to the first certificate (Go serves the first as the leaf)."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    mine = key.public_key().public_bytes(*spki)
    owner = next(
        (i for i, cert in enumerate(chain) if cert.public_key().public_bytes(*spki) == mine), None
    )
    if owner == 0:
        return
    if owner is None:
        what = f"the key in {key_path} does not match the certificate in {chain_path}"
        raise CertificateError(source, key_path, "cert.key-mismatch", what, hints.mismatch(source))
    what = f"{chain_path} has the server's certificate at position {owner + 1}, not first"
    hint = "put the server's own certificate first, then the intermediates it was issued by"
    raise CertificateError(source, chain_path, "cert.chain-order", what, hint)


def files_read(chain_path: Path, key_path: Path) -> tuple[str, ...]:
    named = (str(chain_path), str(key_path))
    resolved = (os.path.realpath(chain_path), os.path.realpath(key_path))
    return tuple(dict.fromkeys((*named, *resolved)))


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
