"""A small valid conf repo (one domain, two aliases) and snapshots built from it."""

from __future__ import annotations

from collections.abc import Mapping

from gitops_mail.core.snapshot import Entry, Snapshot

MANIFEST_PATH = "gitops-mail.yaml"
CONF_PATH = "chasquid/chasquid.conf"
ALIASES_PATH = "chasquid/domains/example.com/aliases"
USERS_PATH = "chasquid/domains/example.com/users"

MANIFEST = """\
version: 1
certificates:
  - name: mail.example.com
    acme_sh: /root/.acme.sh/mail.example.com_ecc
domains:
  example.com: {}
"""
CONF = 'hostname: "mail.example.com"\n'
ALIASES = "postmaster: owner@gmail.com\nsales: carol@fastmail.com\n"

Files = Mapping[str, str | bytes | Entry | None]


def repo_files(*, pipe_aliases: bool = False) -> dict[str, str | bytes | None]:
    """The repo's files; ``pipe_aliases`` allows ``| command`` aliases in its manifest."""
    manifest = MANIFEST
    if pipe_aliases:
        manifest = manifest.replace("version: 1\n", "version: 1\nchasquid:\n  pipe_aliases: true\n")
    return {MANIFEST_PATH: manifest, CONF_PATH: CONF, ALIASES_PATH: ALIASES}


def snapshot(
    changes: Files | None = None,
    *,
    base: Files | None = None,
    name: str = "test",
    revision: str | None = None,
    directories: frozenset[str] = frozenset(),
) -> Snapshot:
    """``base`` (the repo's files by default) with ``changes`` applied; None removes a path.

    ``str`` and ``bytes`` values become regular files; an ``Entry`` is kept as it is.
    """
    files: dict[str, Entry] = {}
    merged = {**(repo_files() if base is None else base), **(changes or {})}
    for path, value in merged.items():
        if isinstance(value, Entry):
            files[path] = value
        elif value is not None:
            files[path] = Entry(value.encode() if isinstance(value, str) else value)
    return Snapshot(files, name, revision=revision, directories=directories)
