"""The DKIM key store: every private key this host signs with, under ``state_dir``.

    <state_dir>/dkim/                          0700 root
    <state_dir>/dkim/<domain>/                 0700 root  (the domain as an A-label)
    <state_dir>/dkim/<domain>/<selector>.pem   0600 root  PKCS#8 PEM
    <state_dir>/dkim/<domain>/<selector>.pub   0600 root  its DNS value, ``v=DKIM1; k=..; p=..``

A key is made once, when the manifest names a selector the store lacks, and
never replaced by a pass: a new file is linked into place (it never
overwrites), and only ``import_key`` replaces one. Reading the store is plain
file reads; ``cryptography`` is imported only to make or import a key. Key
bytes never reach a message, a log event or a ``repr``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gitops_mail.core.dns.dkim import PublicKey, parse_value, txt_value
from gitops_mail.core.domainname import label_error, name_error, to_ascii
from gitops_mail.core.manifest.model import Manifest
from gitops_mail.core.manifest.roles import signing_selectors
from gitops_mail.errors import GitopsMailError, UsageError
from gitops_mail.host import statedir
from gitops_mail.host.dkim import keygen
from gitops_mail.logs import get_logger

STORE_DIR = "dkim"
DIR_MODE = 0o700
FILE_MODE = 0o600

log = get_logger("gitops_mail.dkim")


@dataclass(frozen=True)
class StoredKey:
    domain: str
    selector: str
    pem: bytes = field(repr=False)
    public: PublicKey
    path: Path
    made: bool = False  # made by this call


@dataclass(frozen=True)
class SigningKeys:
    """What an apply hands to render: keys by domain and selector (lower case)."""

    pems: dict[str, dict[str, bytes]] = field(repr=False)
    files: tuple[str, ...]  # the store files read, for the still-live check
    made: tuple[str, ...]  # "selector._domainkey.domain" of keys made now


class KeyStore:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / STORE_DIR

    def path(self, domain: str, selector: str) -> Path:
        return self.root / _dir_name(domain) / f"{_selector(selector)}.pem"

    def load(self, domain: str, selector: str) -> StoredKey | None:
        """The stored key, or None when the store has none."""
        path = self.path(domain, selector)
        pem = _read(path)
        if pem is None:
            return None
        public = _public(path.with_suffix(".pub"))
        if public is None:  # a crash between the two writes: derive it again
            public = keygen.public_of(pem)
            _write(path.with_suffix(".pub"), txt_value(public).encode(), replace=True)
        return StoredKey(domain, selector.lower(), pem, public, path)

    def ensure(self, domain: str, selector: str, algorithm: str, *, create: bool) -> StoredKey:
        """The stored key; one is made when none exists (kept only when ``create``)."""
        found = self.load(domain, selector)
        if found is not None:
            return found
        pem, public = keygen.generate(algorithm)
        path = self.path(domain, selector)
        if not create:
            return StoredKey(domain, selector.lower(), pem, public, path, made=True)
        self._dir(domain)
        if not _write(path, pem, replace=False):  # another process made one meanwhile
            return self.ensure(domain, selector, algorithm, create=create)
        _write(path.with_suffix(".pub"), txt_value(public).encode(), replace=True)
        log.info("dkim.key_made", domain=domain, selector=selector, algorithm=algorithm)
        return StoredKey(domain, selector.lower(), pem, public, path, made=True)

    def put(self, domain: str, selector: str, pem: bytes, public: PublicKey) -> Path:
        """Store ``pem`` for the selector, replacing what was there (an import)."""
        path = self.path(domain, selector)
        self._dir(domain)
        _write(path, pem, replace=True)
        _write(path.with_suffix(".pub"), txt_value(public).encode(), replace=True)
        log.info("dkim.key_imported", domain=domain, selector=selector, key_type=public.k)
        return path

    def _dir(self, domain: str) -> None:
        statedir.prepare(self.root.parent)  # made if new, refused if another user's
        _make_dir(self.root)
        _make_dir(self.root / _dir_name(domain))


def signing_keys(state_dir: Path, manifest: Manifest | None, *, create: bool) -> SigningKeys:
    """A key for every selector of the manifest, made where the store has none.

    With ``create`` false (a dry run) a missing key is made in memory only.
    """
    store = KeyStore(state_dir)
    pems: dict[str, dict[str, bytes]] = {}
    files: list[str] = []
    made: list[str] = []
    for domain, selector, algorithm in wanted(manifest):
        key = store.ensure(domain, selector, algorithm, create=create)
        pems.setdefault(domain, {})[key.selector] = key.pem
        files.append(str(key.path))
        if key.made:
            made.append(f"{selector}._domainkey.{domain}")
    return SigningKeys(pems, tuple(files), tuple(made))


def public_keys(state_dir: Path, manifest: Manifest | None) -> dict[tuple[str, str], PublicKey]:
    """The public halves of the store's keys for the manifest's selectors (none made)."""
    store = KeyStore(state_dir)
    found = {}
    for domain, selector, _ in wanted(manifest):
        key = store.load(domain, selector)
        if key is not None:
            found[(domain, key.selector)] = key.public
    return found


def wanted(manifest: Manifest | None) -> Iterable[tuple[str, str, str]]:
    """(domain, selector, algorithm) for every selector this server signs with: each
    one the manifest names, or this host's own (``hosts.<name>.dkim_selector``)."""
    if manifest is None:
        return []
    return [
        (name, selector, settings.dkim.algorithm)
        for name, settings in sorted(manifest.domains.items())
        if settings.dkim is not None
        for selector in signing_selectors(manifest, settings)
    ]


def _dir_name(domain: str) -> str:
    ascii_name = to_ascii(domain)
    if ascii_name is None or name_error(domain) is not None:
        raise UsageError(f"{domain!r} is not a valid domain name", "give it like example.com")
    return ascii_name.lower()


def _selector(selector: str) -> str:
    if label_error(selector) is not None:
        raise UsageError(
            f"{selector!r} is not a valid DKIM selector", "a selector is one DNS label, like s2026"
        )
    return selector.lower()


def _make_dir(path: Path) -> None:
    """``path`` as a real directory, 0700, whatever the umask; never through a symlink."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, DIR_MODE)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise GitopsMailError(
            f"{path} is not a directory (a symlink or a file)",
            f"move it away: gitops-mail keeps DKIM keys in {path}",
        )
    if stat.S_IMODE(info.st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)


def _read(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _store_error(path, exc) from exc
    with open(fd, "rb") as handle:
        return handle.read()


def _public(path: Path) -> PublicKey | None:
    data = _read(path)
    return None if data is None else parse_value(data.decode("ascii", "replace"))


def _write(path: Path, data: bytes, *, replace: bool) -> bool:
    """Write ``data`` to a new file beside ``path``, then move (``replace``) or link it in.

    A link never overwrites: a key that appeared meanwhile is kept (False).
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)  # left by a process with our pid that died
    try:
        fd = os.open(temporary, flags, FILE_MODE)
        with open(fd, "wb") as handle:
            os.fchmod(fd, FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(fd)
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    except FileExistsError:
        return False
    except OSError as exc:
        raise _store_error(path, exc) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return True


def _store_error(path: Path, exc: OSError) -> GitopsMailError:
    return GitopsMailError(
        f"cannot use the DKIM key store at {path}: {exc.strerror}",
        "gitops-mail must run as root; check the disk and the state_dir in the host settings",
    )
