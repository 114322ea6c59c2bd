"""The desired state: a snapshot read into chasquid's formats and the manifest.

``load_state`` is the "read" stage of the pipeline. It is pure: it parses what
the snapshot holds and keeps the parse problems; validation adds the rest.
Parsing is cached by content, so the unchanged files of a base revision cost
nothing when a plan compares two revisions. The cache keeps only what the
last few reads used: a daemon that reads thousands of revisions holds the
parse of the ones it compares, not of every revision it ever saw.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import ClassVar, Generic, TypeVar

from gitops_mail.core import problems as P
from gitops_mail.core.formats.aliases.parse import AliasFile, DomainAliases, Resolver, parse_aliases
from gitops_mail.core.formats.chasquid_conf import ChasquidConfig, parse_config
from gitops_mail.core.formats.users.db import UserDB, parse_users
from gitops_mail.core.manifest.model import Manifest, parse_manifest
from gitops_mail.core.snapshot import CHASQUID_DIR, MANIFEST, Snapshot

CONF_PATH = f"{CHASQUID_DIR}/chasquid.conf"
DOMAINS_DIR = f"{CHASQUID_DIR}/domains"
DEFAULT_CHASQUID_VERSION = (1, 11)


@dataclass(frozen=True)
class DomainState:
    """One ``chasquid/domains/<name>/`` directory."""

    name: str
    users: UserDB | None  # None: no users file, or one that does not parse
    aliases: AliasFile | None  # None: no aliases file
    has_users_file: bool

    @property
    def path(self) -> str:
        return f"{DOMAINS_DIR}/{self.name}"

    @property
    def users_path(self) -> str:
        return f"{self.path}/users"

    @property
    def aliases_path(self) -> str:
        return f"{self.path}/aliases"

    def user_names(self) -> frozenset[str]:
        return self.users.names() if self.users is not None else frozenset()


@dataclass(frozen=True)
class State:
    snapshot: Snapshot
    manifest: Manifest | None
    config: ChasquidConfig | None
    domains: Mapping[str, DomainState]
    problems: tuple[P.Problem, ...] = field(default=())

    @property
    def chasquid_version(self) -> tuple[int, int]:
        if self.manifest is None:
            return DEFAULT_CHASQUID_VERSION
        return self.manifest.chasquid_version

    @property
    def hostname(self) -> str | None:
        return self.config.hostname if self.config is not None else None

    @cached_property
    def resolver(self) -> Resolver:
        cfg = self.config
        return Resolver(
            {name: _domain_aliases(d) for name, d in self.domains.items()},
            drop_characters=cfg.drop_characters if cfg else ".",
            suffix_separators=cfg.suffix_separators if cfg else "+",
            chasquid_version=self.chasquid_version,
        )


def _domain_aliases(domain: DomainState) -> DomainAliases:
    aliases = domain.aliases.effective() if domain.aliases is not None else {}
    return DomainAliases(users=domain.user_names(), aliases=aliases)


def load_state(snapshot: Snapshot) -> State:
    _Recent.next_read()
    problems: list[P.Problem] = []
    manifest = _load_manifest(snapshot, problems)
    config = _load_config(snapshot, problems)
    domains = {name: _load_domain(snapshot, name, problems) for name in domain_names(snapshot)}
    return State(snapshot, manifest, config, domains, tuple(problems))


def domain_names(snapshot: Snapshot) -> list[str]:
    """Directory names under ``chasquid/domains/``, as they are spelled.

    ``""``, ``.`` and ``..`` are not names (validation reports such paths).
    """
    names = {rel.split("/", 1)[0] for rel, _ in snapshot.under(DOMAINS_DIR) if "/" in rel}
    prefix = DOMAINS_DIR + "/"
    names.update(
        d[len(prefix) :].split("/", 1)[0] for d in snapshot.directories if d.startswith(prefix)
    )
    return sorted(names - {"", ".", ".."})


def _load_manifest(snapshot: Snapshot, problems: list[P.Problem]) -> Manifest | None:
    data = snapshot.data(MANIFEST)
    if data is None:
        return None
    manifest, found = _parse_manifest(data)
    problems.extend(found)
    return manifest


def _load_config(snapshot: Snapshot, problems: list[P.Problem]) -> ChasquidConfig | None:
    data = snapshot.data(CONF_PATH)
    if data is None:
        return None
    config, found = _parse_config(data)
    problems.extend(found)
    return config


def _load_domain(snapshot: Snapshot, name: str, problems: list[P.Problem]) -> DomainState:
    base = f"{DOMAINS_DIR}/{name}"
    users_data = snapshot.data(f"{base}/users")
    users = None
    if users_data is not None:
        users, found = _parse_users(users_data, f"{base}/users")
        problems.extend(found)
    aliases_data = snapshot.data(f"{base}/aliases")
    aliases = None
    if aliases_data is not None:
        aliases = _parse_aliases(aliases_data, f"{base}/aliases", name)
    return DomainState(name, users, aliases, users_data is not None)


T = TypeVar("T")
K = TypeVar("K")


class _Recent(Generic[K, T]):
    """A pure parser's results by argument, kept while one of the last ``KEEP`` reads used them.

    Identical bytes parse to identical results, so a file unchanged between
    two revisions is parsed once. Counting reads (``load_state`` calls), not
    entries, bounds the cache by what is being compared: plan reads two
    revisions, the daemon's next pass reads one more sharing most files.
    """

    KEEP = 3
    read = 0
    caches: ClassVar[list[_Recent[object, object]]] = []
    lock: ClassVar = threading.Lock()  # the daemon's worker and a CLI call may both read

    def __init__(self, parse: Callable[[K], T]) -> None:
        self.parse = parse
        self.entries: dict[K, tuple[T, int]] = {}
        _Recent.caches.append(self)  # type: ignore[arg-type]  # each is trimmed alike

    def __call__(self, key: K) -> T:
        hit = self.entries.get(key)
        value = self.parse(key) if hit is None else hit[0]
        with _Recent.lock:
            self.entries[key] = (value, _Recent.read)
        return value

    @classmethod
    def next_read(cls) -> None:
        with cls.lock:
            cls.read += 1
            oldest = cls.read - cls.KEEP + 1
            for cache in cls.caches:
                cache.entries = {k: v for k, v in cache.entries.items() if v[1] >= oldest}


def _users(key: tuple[bytes, str]) -> tuple[UserDB | None, tuple[P.Problem, ...]]:
    db, found = parse_users(*key)
    return db, tuple(found)


def _aliases(key: tuple[bytes, str, str]) -> AliasFile:
    return parse_aliases(*key)


_parse_users_cached = _Recent(_users)
_parse_aliases_cached = _Recent(_aliases)


def _parse_users(data: bytes, path: str) -> tuple[UserDB | None, tuple[P.Problem, ...]]:
    return _parse_users_cached((data, path))


def _parse_aliases(data: bytes, path: str, domain: str) -> AliasFile:
    return _parse_aliases_cached((data, path, domain))


@lru_cache(maxsize=16)
def _parse_config(data: bytes) -> tuple[ChasquidConfig | None, tuple[P.Problem, ...]]:
    config, found = parse_config(data, CONF_PATH)
    return config, tuple(found)


@lru_cache(maxsize=16)
def _parse_manifest(data: bytes) -> tuple[Manifest | None, tuple[P.Problem, ...]]:
    manifest, found = parse_manifest(data, MANIFEST)
    return manifest, tuple(found)
