"""Directories on disk: read one into a Snapshot, write files atomically.

Reading walks with ``lstat`` and never follows a symlink below the root: a
symlink becomes an entry holding its target, so a link pointing outside the
tree is seen (and can be refused by validation) instead of being read through.
Writing goes through a temporary file in the same directory, ``fsync`` and
``os.replace``, so a reader sees the old file or the new one, never half of one.
Every file written gets its mode (and group) explicitly, whatever the umask.

gitops-mail's own files (the state dir's records, locks and logs) are opened
and read with ``open_own`` and ``read_own``: never through a symlink, and only
when they are regular files of root's (or of the user gitops-mail runs as). A
file another user put there is refused (``NotOurs``), never believed.
"""

from __future__ import annotations

import contextlib
import errno
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
_ROOT_UID = 0


class NotOurs(OSError):
    """A file gitops-mail keeps is a symlink, not a regular file, or another user's.

    Its ``strerror`` says which, for messages: "it is a symbolic link".
    """


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


def atomic_write(
    path: Path, data: bytes, *, mode: int | None = None, group: int | None = None
) -> None:
    """Replace ``path`` with ``data`` in one step; keep its mode unless ``mode`` is given.

    A new file gets 0644; the umask plays no part. ``group`` (a gid) is the new
    file's group (default: the writer's). The path itself is replaced: a
    symlink there is not followed. On any error the old file is intact and no
    temporary file is left.
    """
    import tempfile  # noqa: PLC0415 - writes only; reads start faster without it

    permissions = stat.S_IMODE(mode) if mode is not None else _existing_mode(path)
    temporary: str | None = None
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with open(fd, "wb") as handle:
            if group is not None and group != os.getegid():
                os.fchown(fd, -1, group)
            os.fchmod(fd, permissions)  # after the chown, which may clear set-id bits
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


def open_own(path: Path, flags: int, mode: int = 0o600) -> int:
    """A descriptor of gitops-mail's own file ``path`` (a lock, a pid file, a log), made if missing.

    ``flags`` say how (``os.O_RDWR``, ``os.O_WRONLY | os.O_APPEND``); the file is
    created with ``mode`` and set to it, whatever the umask. Never through a
    symlink (``NotOurs``), nor when it is not a regular file or belongs to
    another user; other errors are the ``OSError`` of ``os.open``.
    """
    flags |= os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        raise _symlink(exc) from None
    try:
        info = os.fstat(fd)
        _check_own(info)
        if stat.S_IMODE(info.st_mode) != mode:
            os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_own(path: Path) -> bytes:
    """The bytes of gitops-mail's own file ``path``, read without following a symlink.

    Raises ``FileNotFoundError`` when there is none, ``NotOurs`` when it is a
    symlink, not a regular file or another user's, other ``OSError`` as read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _symlink(exc) from None
    with open(fd, "rb") as handle:
        _check_own(os.fstat(fd))
        return handle.read()


def trusted_owner(uid: int) -> bool:
    """Whether a file of ``uid`` can only have been made by root or by us."""
    return uid in (_ROOT_UID, os.geteuid())


def _check_own(info: os.stat_result) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    if not stat.S_ISREG(info.st_mode):
        raise NotOurs(errno.EINVAL, "it is not a regular file")
    if not trusted_owner(info.st_uid):
        raise NotOurs(errno.EPERM, f"it belongs to uid {info.st_uid}, not to {_me()}")


def _me() -> str:
    return "root" if os.geteuid() == _ROOT_UID else f"uid {os.geteuid()}"


def _symlink(exc: OSError) -> OSError:
    """``O_NOFOLLOW`` met a symlink: say so plainly; any other error as it is."""
    return NotOurs(errno.ELOOP, "it is a symbolic link") if exc.errno == errno.ELOOP else exc


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
