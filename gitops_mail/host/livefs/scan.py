"""Reading chasquid's live config dir and planning a change to it; nothing here writes.

``plan`` compares a desired tree with the live one and the inventory (what
gitops-mail installed): which files are created, updated, re-moded or removed,
which foreign files (an admin's own) the tree takes over, and which directories
appear or become empty. ``configdir`` carries the plan out.
"""

from __future__ import annotations

import functools
import grp
import hashlib
import json
import os
import pwd
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops_mail.core.tree import DesiredTree
from gitops_mail.errors import GitopsMailError
from gitops_mail.host.localfs import read_own

_NAME_HINT = (
    "install chasquid (its package creates the chasquid user and group), or create it "
    "with useradd/groupadd --system"
)


@dataclass(frozen=True)
class Drift:
    modified: tuple[str, ...]  # managed, changed by hand since the last apply
    missing: tuple[str, ...]  # managed, deleted by hand
    foreign: tuple[str, ...]  # not managed: an admin's own files

    @property
    def clean(self) -> bool:
        return not (self.modified or self.missing or self.foreign)


@dataclass(frozen=True)
class Change:
    path: str
    op: str  # "create" | "update" | "remove" | "chmod"


@dataclass(frozen=True)
class Live:
    files: dict[str, os.stat_result]  # everything but directories (lstat)
    dirs: dict[str, os.stat_result]


@dataclass(frozen=True)
class Want:
    data: bytes = field(repr=False)
    mode: int
    uid: int
    gid: int


@dataclass(frozen=True)
class Plan:
    wants: dict[str, Want]
    live: Live
    changes: tuple[Change, ...]  # by path
    adopted: tuple[str, ...]  # foreign files the tree takes over
    files: tuple[str, ...]  # every file of the future tree
    dirs: tuple[str, ...]  # every directory of the future tree, parents first
    new_dirs: tuple[str, ...]  # parents first
    gone_dirs: tuple[str, ...]  # children first


def scan(config_dir: Path) -> Live:
    """Every entry below ``config_dir`` by lstat; symlinks are never followed."""
    if not config_dir.is_dir():
        raise GitopsMailError(
            f"chasquid's config dir {config_dir} does not exist or is not a directory",
            hint="install chasquid (its package creates it) "
            "or fix chasquid.config_dir in the host settings",
        )
    files: dict[str, os.stat_result] = {}
    dirs: dict[str, os.stat_result] = {}
    pending = [""]
    while pending:
        relative = pending.pop()
        try:
            with os.scandir(config_dir / relative) as entries:
                found = [(e.name, e.stat(follow_symlinks=False)) for e in entries]
        except OSError as exc:
            raise _read_error(config_dir / relative, exc) from exc
        for name, info in found:
            path = f"{relative}/{name}" if relative else name
            (dirs if stat.S_ISDIR(info.st_mode) else files)[path] = info
            if stat.S_ISDIR(info.st_mode):
                pending.append(path)
    return Live(files, dirs)


def plan(config_dir: Path, tree: DesiredTree, inventory: Mapping[str, str]) -> Plan:
    wants = resolve(tree)
    live = scan(config_dir)
    _check_conflicts(wants, live, config_dir)
    changes = [Change(p, "remove") for p in inventory if p not in wants and p in live.files]
    for path, want in wants.items():
        op = _op(config_dir / path, want, live.files.get(path), foreign=path not in inventory)
        if op:
            changes.append(Change(path, op))
    removed = {c.path for c in changes if c.op == "remove"}
    files = (set(live.files) - removed) | set(wants)
    gone = _emptied_dirs(removed, files, live.dirs)
    dirs = (set(live.dirs) - gone) | {a for p in wants for a in ancestors(p)}
    return Plan(
        wants=wants,
        live=live,
        changes=tuple(sorted(changes, key=lambda c: c.path)),
        adopted=tuple(sorted(p for p in wants if p in live.files and p not in inventory)),
        files=tuple(sorted(files)),
        dirs=tuple(sorted(dirs)),
        new_dirs=tuple(sorted(dirs - set(live.dirs))),
        gone_dirs=tuple(sorted(gone, reverse=True)),
    )


def drift(config_dir: Path, inventory: Mapping[str, str]) -> Drift:
    live = scan(config_dir)
    modified = [
        path
        for path, digest in inventory.items()
        if path in live.files and _digest(config_dir / path, live.files[path]) != digest
    ]
    return Drift(
        modified=tuple(sorted(modified)),
        missing=tuple(sorted(p for p in inventory if p not in live.files)),
        foreign=tuple(sorted(p for p in live.files if p not in inventory)),
    )


def resolve(tree: DesiredTree) -> dict[str, Want]:
    """Check every path, mode, owner and group of ``tree`` before anything is written."""
    wants: dict[str, Want] = {}
    for path, spec in sorted(tree.items()):
        parts = path.split("/")
        if path.startswith("/") or "\0" in path or any(p in ("", ".", "..") for p in parts):
            raise GitopsMailError(
                f"refusing to install {path!r}: not a relative path inside the config dir",
                hint="use a POSIX path like domains/example.com/users, without '.' or '..'",
            )
        if not 0 <= spec.mode <= 0o7777:
            raise GitopsMailError(f"refusing to install {path}: mode {spec.mode:o} is not valid")
        wants[path] = Want(spec.data, spec.mode, _uid(spec.owner, path), _gid(spec.group, path))
    clashes = sorted({a for p in wants for a in ancestors(p)} & set(wants))
    if clashes:
        raise GitopsMailError(
            f"the desired tree has both a file {clashes[0]} and files under it",
            hint="a path is either a file or a directory",
        )
    return wants


def ancestors(path: str) -> Iterator[str]:
    """``a``, ``a/b`` for ``a/b/c``."""
    parts = path.split("/")
    for end in range(1, len(parts)):
        yield "/".join(parts[:end])


def owner_mode(info: os.stat_result) -> tuple[int, int, int]:
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


def link_target(link: Path, config_dir: Path) -> str:
    """A symlink's target, made absolute when it is relative and leaves the config dir."""
    target = os.readlink(link)
    if os.path.isabs(target):
        return target
    resolved = os.path.normpath(os.path.join(link.parent, target))
    inside = resolved == str(config_dir) or resolved.startswith(f"{config_dir}{os.sep}")
    return target if inside else resolved


def read_json(path: Path) -> Any:
    """A JSON file gitops-mail wrote, or None when there is none (never through a symlink,
    never another user's)."""
    try:
        return json.loads(read_own(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise GitopsMailError(
            f"cannot read {path}: {reason(exc)}",
            hint="gitops-mail wrote it atomically: check the disk and its permissions",
        ) from exc


def reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"{exc.strerror} ({exc.filename})" if exc.filename else str(exc.strerror)
    return str(exc)


# --- helpers -------------------------------------------------------------------


def _op(live_path: Path, want: Want, info: os.stat_result | None, foreign: bool) -> str | None:
    if info is None:
        return "create"
    if foreign or not stat.S_ISREG(info.st_mode) or _read(live_path) != want.data:
        return "update"
    if owner_mode(info) != (want.uid, want.gid, want.mode):
        return "chmod"
    return None


def _check_conflicts(wants: Mapping[str, Want], live: Live, config_dir: Path) -> None:
    for path in wants:
        if path in live.dirs:
            raise GitopsMailError(
                f"{config_dir / path} is a directory, but the desired tree has a file there",
                hint="move it away by hand, then apply again",
            )
        for ancestor in ancestors(path):
            if ancestor in live.files:
                raise GitopsMailError(
                    f"{config_dir / ancestor} is not a directory (a file or symlink), "
                    f"but the desired tree has {path} under it",
                    hint="move it away by hand, then apply again",
                )


def _emptied_dirs(removed: set[str], files: set[str], dirs: Mapping[str, Any]) -> set[str]:
    """Directories below the top level that held a removed file and would be empty."""
    candidates = {a for p in removed for a in list(ancestors(p))[1:]}
    kept = [d for d in dirs if d not in candidates]
    occupied = {a for p in [*files, *kept] for a in ancestors(p)} | set(kept)
    return candidates - occupied


@functools.cache
def _uid_of(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


@functools.cache
def _gid_of(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _uid(name: str, path: str) -> int:
    uid = _uid_of(name)
    if uid is None:
        raise GitopsMailError(f"user {name!r} (owner of {path}) does not exist", _NAME_HINT)
    return uid


def _gid(name: str, path: str) -> int:
    gid = _gid_of(name)
    if gid is None:
        raise GitopsMailError(f"group {name!r} (group of {path}) does not exist", _NAME_HINT)
    return gid


def _read(path: Path) -> bytes:
    try:
        with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise _read_error(path, exc) from exc


def _read_error(path: Path, exc: OSError) -> GitopsMailError:
    return GitopsMailError(
        f"cannot read {path}: {exc.strerror}",
        hint="gitops-mail must run as root to read chasquid's config dir",
    )


def _digest(path: Path, info: os.stat_result) -> str:
    if not stat.S_ISREG(info.st_mode):
        return ""  # a symlink or special file where a managed file was: modified
    return hashlib.sha256(_read(path)).hexdigest()
