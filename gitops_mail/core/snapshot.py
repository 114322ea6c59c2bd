"""A snapshot: the files of one version of the conf repo, as plain data.

Built by ``git.read`` (a commit's tree) or ``localfs`` (a working tree or a live
config dir); everything after reading works on this and never on the disk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

# git's tree entry modes, used for every source so that checks are uniform.
MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_SYMLINK = 0o120000
MODE_GITLINK = 0o160000  # a submodule: no content in this repo
MODE_OTHER = 0  # a device, FIFO or socket found on a filesystem

MANIFEST = "gitops-mail.yaml"
CHASQUID_DIR = "chasquid"


@dataclass(frozen=True)
class Entry:
    """One path: its bytes (a symlink's target for symlinks) and its mode."""

    data: bytes
    mode: int = MODE_FILE

    @property
    def is_symlink(self) -> bool:
        return self.mode == MODE_SYMLINK

    @property
    def is_executable(self) -> bool:
        return self.mode == MODE_EXEC

    @property
    def is_regular(self) -> bool:
        return self.mode in (MODE_FILE, MODE_EXEC)


@dataclass(frozen=True)
class Snapshot:
    """Files by POSIX path relative to the repo root (``chasquid/chasquid.conf``).

    ``revision`` is the full commit id when read from git, else ``None``;
    ``source`` says where it came from, for messages.
    """

    files: Mapping[str, Entry]
    source: str
    revision: str | None = None
    directories: frozenset[str] = field(default_factory=frozenset)

    def get(self, path: str) -> Entry | None:
        return self.files.get(path)

    def data(self, path: str) -> bytes | None:
        entry = self.files.get(path)
        return entry.data if entry is not None and entry.is_regular else None

    def under(self, prefix: str) -> Iterator[tuple[str, Entry]]:
        """Entries below ``prefix/``, in path order, with paths relative to it."""
        base = prefix.rstrip("/") + "/"
        for path in sorted(self.files):
            if path.startswith(base):
                yield path[len(base) :], self.files[path]

    def chasquid_tree(self) -> dict[str, Entry]:
        """The ``chasquid/`` subtree, keyed relative to chasquid's config dir."""
        return dict(self.under(CHASQUID_DIR))

    @property
    def short(self) -> str:
        return self.revision[:7] if self.revision else self.source
