"""gitops-mail's state dir: made with explicit modes, refused when another user can change it.

The daemon and ``apply`` run as root; the push hooks run as the pusher. So the
state dir (``state_dir`` in the host settings) is root's:

- made 0700; every file in it 0600, except the two the post-receive hook
  reads, ``state.json`` and ``daemon.json``: 0640, with the dir's group;
- ``gitops-mail hooks install`` shares it (``share``): the dir gets the watched
  repo's group (``deploy`` makes that the pusher's) and mode 0710, so the
  pusher can open those two files by name and nothing more: not list the
  dir, not read or write anything else in it.

``prepare`` runs before anything is written there (the state lock, the
daemon's pid file, the supervisor's lock, the record of attempts). It makes a
missing state dir, and refuses one that is a symlink, not a directory, not
ours, or inside a directory another user can write. One with a mode bit
beyond 0750 is repaired (0700, or 07x0 for a group other than root's); if
group or others could write it, only when everything in it is a file or
directory of ours with one link, and otherwise it is refused, naming what is
suspect.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from gitops_mail.errors import GitopsMailError
from gitops_mail.host import localfs

SHARED = ("state.json", "daemon.json", "certificates.json")  # the push hooks read them
DIR_MODE = 0o700
SHARED_DIR_MODE = 0o710  # the group may open a file it knows the name of, not list the dir
FILE_MODE = 0o600
SHARED_FILE_MODE = 0o640
PARENT_MODE = 0o755  # a missing parent, such as /var/lib
HINT = "check state_dir in the host settings: it must be a directory this user can write"
_ALLOWED = 0o750  # the owner's bits, and the group's read and search; nothing for others
_OTHERS_WRITE = 0o022


def prepare(state_dir: Path) -> None:
    """Make ``state_dir`` if it is missing, check it, repair its mode; see the module docstring.

    Also tightens this process's umask (``tighten_umask``): whoever prepares the
    state dir goes on to write for the host.
    """
    tighten_umask()
    _check_parents(state_dir)
    info = _lstat(state_dir)
    if info is None:
        _create(state_dir)
        info = _lstat(state_dir)
    if info is None:
        raise GitopsMailError(f"the state dir {state_dir} vanished while being made", HINT)
    _check(state_dir, info)
    if stat.S_IMODE(info.st_mode) & ~_ALLOWED:
        _repair(state_dir, stat.S_IMODE(info.st_mode), _repaired_mode(info))


def share(state_dir: Path, gid: int) -> None:
    """Let group ``gid`` open ``state.json`` and ``daemon.json`` there, and nothing else."""
    prepare(state_dir)
    try:
        _set_dir_mode(state_dir, SHARED_DIR_MODE, gid)
        for name in SHARED:
            _share_file(state_dir / name, gid)
    except OSError as exc:
        raise GitopsMailError(f"cannot share the state dir {state_dir}: {exc.strerror}") from exc


def write_shared(path: Path, data: bytes) -> None:
    """Replace one of ``SHARED``: 0640, with the state dir's group."""
    try:
        group = os.stat(path.parent).st_gid
    except OSError as exc:
        raise GitopsMailError(f"cannot write {path}: {exc.strerror}", HINT) from exc
    localfs.atomic_write(path, data, mode=SHARED_FILE_MODE, group=group)


def tighten_umask() -> None:
    """Nothing this process makes without an explicit mode becomes writable by others.

    Under ``umask 000`` a plain ``mkdir`` makes a 0777 directory; gitops-mail gives
    its own files and directories explicit modes, and this keeps anything made
    on its behalf (a checkpoint, a git object) at 0755 or less. Stricter bits stay.
    """
    current = os.umask(0o077)
    os.umask(current | _OTHERS_WRITE)


# --- making and checking ------------------------------------------------------------------


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None  # missing; making it says why when a parent is a file
    except OSError as exc:
        raise GitopsMailError(f"cannot read the state dir {path}: {exc.strerror}", HINT) from exc


def _create(state_dir: Path) -> None:
    """Make ``state_dir`` (0700) and any missing parent (0755), whatever the umask."""
    missing = [state_dir]
    while not os.path.lexists(missing[-1].parent) and missing[-1].parent != missing[-1]:
        missing.append(missing[-1].parent)
    try:
        for path in reversed(missing):
            mode = DIR_MODE if path == state_dir else PARENT_MODE
            os.mkdir(path, mode)
            _set_dir_mode(path, mode)
    except FileExistsError:
        pass  # made meanwhile: checked next like any other
    except OSError as exc:
        message = f"cannot create the state dir {state_dir}: {exc.strerror}"
        raise GitopsMailError(message, HINT) from exc


def _check(state_dir: Path, info: os.stat_result) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise GitopsMailError(
            f"the state dir {state_dir} is a symbolic link",
            "gitops-mail keeps its lock and records only in a real directory: "
            "set state_dir in the host settings to the directory itself",
        )
    if not stat.S_ISDIR(info.st_mode):
        raise GitopsMailError(f"the state dir {state_dir} is not a directory", HINT)
    if info.st_uid != os.geteuid():
        raise GitopsMailError(
            f"the state dir {state_dir} belongs to uid {info.st_uid}, not to {_me()}",
            "gitops-mail trusts only a state dir of its own: check what is in it, then "
            f"`chown {_me_for_chown()} {state_dir}` and `chmod 0700 {state_dir}`",
        )


def _check_parents(state_dir: Path) -> None:
    """Refuse a state dir that another user could move away or replace."""
    real = Path(os.path.realpath(state_dir.parent))
    for parent in (real, *real.parents):
        try:
            info = os.stat(parent)
        except (FileNotFoundError, NotADirectoryError):
            continue  # made later, by us
        except OSError as exc:
            raise GitopsMailError(f"cannot read {parent}: {exc.strerror}", HINT) from exc
        why = _open_to_others(info)
        if why:
            raise GitopsMailError(
                f"the state dir {state_dir} is inside {parent}, which {why}",
                "keep state_dir in a directory only root can write, such as /var/lib",
            )


def _open_to_others(info: os.stat_result) -> str:
    """Why another user could replace an entry of this directory; "" if none can."""
    if not localfs.trusted_owner(info.st_uid):
        return f"belongs to uid {info.st_uid}"
    if info.st_mode & stat.S_ISVTX:
        return ""  # like /tmp: only an entry's owner may move or remove it
    if info.st_mode & stat.S_IWOTH:
        return "any user can write"
    if info.st_mode & stat.S_IWGRP and info.st_gid != 0:
        return f"group {info.st_gid} can write"
    return ""


# --- repairing ----------------------------------------------------------------------------


def _repaired_mode(info: os.stat_result) -> int:
    """The owner's bits; a group of its own (not root's, as ``share`` sets) keeps its read
    and search. Nothing is added: a read-only state dir stays read-only."""
    mode = stat.S_IMODE(info.st_mode)
    return (mode & DIR_MODE) | (mode & 0o050 if info.st_gid != 0 else 0)


def _repair(state_dir: Path, mode: int, repaired: int) -> None:
    """Close a state dir open to others; refuse it if someone else may have written there."""
    try:
        _set_dir_mode(state_dir, repaired)  # first: nobody else gets in meanwhile
        suspects = _suspects(state_dir) if mode & _OTHERS_WRITE else []
        _set_entry_modes(state_dir)  # ours only: never through a symlink, never another's file
    except OSError as exc:
        raise GitopsMailError(f"cannot repair the state dir {state_dir}: {exc.strerror}") from exc
    if suspects:
        raise GitopsMailError(
            f"the state dir {state_dir} was open to other users (mode {mode:04o}) and holds "
            f"what gitops-mail did not make: {'; '.join(suspects)}",
            "someone may have tampered with it: check those and remove them, then run "
            "gitops-mail again (it has closed the state dir and repairs the rest itself)",
        )
    import logging  # noqa: PLC0415 - rare; the push hooks import this module and start fast

    logging.getLogger(__name__).warning(
        "the state dir %s had mode %04o; it is %04o now", state_dir, mode, repaired
    )


def _suspects(state_dir: Path) -> list[str]:
    """What in ``state_dir`` another user may have put there, each with why."""
    found = []
    with os.scandir(state_dir) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            why = _suspect(entry.stat(follow_symlinks=False))
            if why:
                found.append(f"{entry.name} ({why})")
    return found


def _suspect(info: os.stat_result) -> str:
    if stat.S_ISLNK(info.st_mode):
        return "a symbolic link"
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        return "not a file or directory"
    if not localfs.trusted_owner(info.st_uid):
        return f"belongs to uid {info.st_uid}"
    if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
        return f"a file with {info.st_nlink} links"
    return ""


def _set_entry_modes(state_dir: Path) -> None:
    """Every file of ours 0600 (the shared two 0640), every directory 0700."""
    with os.scandir(state_dir) as entries:
        for entry in entries:
            info = entry.stat(follow_symlinks=False)
            if not localfs.trusted_owner(info.st_uid):
                continue
            if stat.S_ISDIR(info.st_mode):
                _set_dir_mode(Path(entry.path), DIR_MODE)
            elif stat.S_ISREG(info.st_mode) and info.st_nlink == 1:  # a link may be any file
                mode = SHARED_FILE_MODE if entry.name in SHARED else FILE_MODE
                _set_file_mode(Path(entry.path), mode)


def _share_file(path: Path, gid: int) -> None:
    with contextlib.suppress(FileNotFoundError):  # written with the dir's group when it comes
        _set_file_mode(path, SHARED_FILE_MODE, gid)


def _set_dir_mode(path: Path, mode: int, gid: int | None = None) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if gid is not None:
            os.fchown(fd, -1, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _set_file_mode(path: Path, mode: int, gid: int | None = None) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or not localfs.trusted_owner(info.st_uid):
            return  # never ours to change; ``prepare`` refuses what others put there
        if gid is not None:
            os.fchown(fd, -1, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _me() -> str:
    return "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"


def _me_for_chown() -> str:
    return "root:" if os.geteuid() == 0 else f"{os.geteuid()}:"
