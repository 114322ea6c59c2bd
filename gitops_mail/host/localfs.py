"""Directories on disk: read one into a Snapshot, write files atomically.

Reading walks with ``lstat`` and never follows a symlink below the root: a
symlink becomes an entry holding its target, so a link pointing outside the
tree is seen (and can be refused by validation) instead of being read through.
Writing goes through a temporary file in the same directory, ``fsync`` and
``os.replace``, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Collection, Mapping
from pathlib import Path, PurePosixPath

from gitops_mail.core import bounds
from gitops_mail.core.policy import Limits
from gitops_mail.core.snapshot import (
    MODE_EXEC,
    MODE_FILE,
    MODE_OTHER,
    MODE_SYMLINK,
    Entry,
    Snapshot,
)
from gitops_mail.errors import GitopsMailError

_NEW_FILE_MODE = 0o644


def read_directory(
    root: Path,
    *,
    prefix: str = "",
    skip: Collection[str] = (".git",),
    limits: Limits | None = None,
) -> Snapshot:
    """Every file, symlink and directory below ``root``, keyed ``prefix`` + POSIX path.

    ``skip`` holds names (skipped at any depth) or relative paths to leave out.
    The walk measures before it reads: a tree over ``limits`` (default
    ``Limits()``: too many paths, a file or all of them too large by
    ``lstat``) is refused (``InvalidConfig``, every path named), nothing read.
    """
    if not root.is_dir():
        raise GitopsMailError(
            f"{root} is not a directory", hint="pass the path of an existing directory"
        )
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    budget = bounds.Budget(limits or Limits())
    found: dict[str, os.stat_result] = {}
    directories = {prefix.rstrip("/")} if prefix else set()
    pending = [""]
    while pending:
        relative = pending.pop()
        for name, info in _scan(root / relative):
            child = f"{relative}/{name}" if relative else name
            if name in skip or child in skip:
                continue
            if stat.S_ISDIR(info.st_mode):
                directories.add(prefix + child)
                pending.append(child)
            else:
                found[child] = info
        _judge(root, budget, len(found) + len(directories), prefix + relative)
    sizes = [(prefix + p, i.st_size) for p, i in found.items() if stat.S_ISREG(i.st_mode)]
    problems = budget.files(sizes)
    if problems:
        raise bounds.refusal(f"working tree {root}", problems)
    files = {prefix + p: _entry(root / p, i, budget.limits.file_bytes) for p, i in found.items()}
    return Snapshot(
        files=dict(sorted(files.items())),
        source=f"working tree {root}",
        directories=frozenset(directories),
    )


def _judge(root: Path, budget: bounds.Budget, paths: int, where: str) -> None:
    problem = budget.count(paths, where)
    if problem is not None:
        raise bounds.refusal(f"working tree {root}", [problem])


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` in one step; keep its mode unless ``mode`` is given.

    A new file gets 0644. The path itself is replaced: a symlink there is not
    followed. On any error the old file is intact and no temporary file is left.
    """
    import tempfile  # noqa: PLC0415 - writes only; reads start faster without it

    permissions = stat.S_IMODE(mode) if mode is not None else _existing_mode(path)
    temporary: str | None = None
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with open(fd, "wb") as handle:
            os.fchmod(fd, permissions)
            handle.write(data)
            handle.flush()
            os.fsync(fd)
        os.replace(temporary, path)
        temporary = None
        fsync_directory(path.parent)
    except OSError as exc:
        raise GitopsMailError(
            f"cannot write {path}: {exc.strerror}",
            hint="check that its directory exists, is a directory and is writable",
        ) from exc
    finally:
        if temporary is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)


def write_tree(root: Path, files: Mapping[str, Entry]) -> None:
    """Create ``files`` (and their directories) under ``root``, with their modes.

    Every path is checked before anything is written: a path that is absolute,
    climbs with ``..``, or passes through a symlink is refused.
    """
    for path, entry in files.items():
        _check_relative(root, path)
        if not (entry.is_regular or entry.is_symlink):
            raise GitopsMailError(
                f"cannot write {path!r}: mode {entry.mode:o} is neither a file nor a symlink",
                hint="only regular files, executables and symlinks can be written",
            )
    root.mkdir(parents=True, exist_ok=True)
    for path, entry in sorted(files.items()):
        target = _make_parents(root, path)
        if entry.is_symlink:
            _atomic_symlink(target, entry.data)
        else:
            atomic_write(target, entry.data, mode=0o755 if entry.is_executable else 0o644)


# --- reading ---------------------------------------------------------------


def _scan(directory: Path) -> list[tuple[str, os.stat_result]]:
    """``(name, lstat)`` of every entry of ``directory``, sorted by name."""
    try:
        with os.scandir(directory) as entries:
            found = [(e.name, e.stat(follow_symlinks=False)) for e in entries]
    except OSError as exc:
        raise _read_error(directory, exc) from exc
    return sorted(found)


def _entry(path: Path, info: os.stat_result, largest: int) -> Entry:
    try:
        if stat.S_ISLNK(info.st_mode):
            return Entry(os.readlink(os.fsencode(path)), MODE_SYMLINK)
        if stat.S_ISREG(info.st_mode):
            data = _read_regular(path, largest)
            return Entry(data, MODE_EXEC if info.st_mode & 0o100 else MODE_FILE)
    except OSError as exc:
        raise _read_error(path, exc) from exc
    return Entry(b"", MODE_OTHER)


def _read_regular(path: Path, largest: int) -> bytes:
    """The file's bytes; refuses it if it became something else, or grew past ``largest``,
    since the walk saw it."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    with open(os.open(path, flags), "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(0, "it changed into something else while being read")
        data = handle.read(largest + 1)
    if len(data) > largest:
        raise OSError(0, "it grew past limits.file_bytes while being read")
    return data


def _read_error(path: Path, exc: OSError) -> GitopsMailError:
    return GitopsMailError(
        f"cannot read {path}: {exc.strerror}",
        hint="check its permissions: gitops-mail must be able to read every file in the tree",
    )


# --- writing ---------------------------------------------------------------


def _existing_mode(path: Path) -> int:
    try:
        info = path.lstat()
    except OSError:
        return _NEW_FILE_MODE  # a new file; or the write itself will report the problem
    return stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else _NEW_FILE_MODE


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_relative(root: Path, path: str) -> None:
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or ".." in parts or "\0" in path:
        raise GitopsMailError(
            f"refusing to write {path!r}: it is not a path inside {root}",
            hint="use a relative path without '..'",
        )


def _make_parents(root: Path, path: str) -> Path:
    """Create the directories above ``path``; refuse to pass through a symlink or file."""
    current = root
    for part in PurePosixPath(path).parts[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            raise GitopsMailError(
                f"refusing to write {path!r}: {current} is not a directory",
                hint="remove or rename what is in the way",
            )
        try:
            current.mkdir(exist_ok=True)
        except OSError as exc:
            raise GitopsMailError(f"cannot create {current}: {exc.strerror}") from exc
    return root / path


def _atomic_symlink(target: Path, destination: bytes) -> None:
    temporary = target.with_name(f".{target.name}.{os.urandom(6).hex()}.tmp")
    try:
        os.symlink(destination, os.fsencode(temporary))
        try:
            os.replace(temporary, target)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise GitopsMailError(f"cannot write {target}: {exc.strerror}") from exc
