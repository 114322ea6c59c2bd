"""Which certificate files this host's policy lets a push make gitops-mail read.

A source path is read only when it is inside ``policy.certificate_dirs``
twice over: as the manifest names it (normalised, judged before anything on
the disk is touched) and as it resolves (certbot's ``live/`` links into
``archive/`` stay inside; a link out of the allowed directories does not).
The file finally opened is judged once more by what its descriptor names,
so a link swapped in between is refused too. A refused path is told only as
refused: never whether it exists or what it holds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from gitops_mail.core.checks.policy import inside
from gitops_mail.core.manifest.model import CertificateSource


def named_paths(
    source: CertificateSource, chain_path: Path, key_path: Path
) -> list[tuple[str, str]]:
    """``(what, path)`` for every path of ``source``, as the manifest names it."""
    chain = named(source, "fullchain", chain_path)
    key = named(source, "key", key_path)
    found = [("fullchain file", chain), ("key file", key)]
    if source.kind != "files":
        found.insert(0, ("directory", source.directory or ""))
    return found


def named(source: CertificateSource, role: str, path: Path) -> str:
    """``path`` as the manifest writes it (``files:``), or as derived from its directory."""
    if source.kind != "files":
        return str(path)
    return (source.fullchain if role == "fullchain" else source.key) or ""


def allowed(path: str, dirs: Sequence[str]) -> bool:
    """Whether ``path`` is inside ``dirs`` as named, then as resolved."""
    if not inside(path, dirs):
        return False  # before any system call about the path
    return inside(os.path.realpath(path), _with_resolved(dirs))


def opened_allowed(fd: int, dirs: Sequence[str]) -> bool:
    """Whether the file open as ``fd`` is inside ``dirs`` (True where /proc cannot tell)."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return True  # no /proc: the check by path already ran
    return inside(target, _with_resolved(dirs))


def _with_resolved(dirs: Sequence[str]) -> tuple[str, ...]:
    """The allowed directories as named and as they resolve (one may be a link)."""
    return (*dirs, *(os.path.realpath(d) for d in dirs if d.startswith("/")))
