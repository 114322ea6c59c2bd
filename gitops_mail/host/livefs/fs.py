"""Filesystem steps for ``configdir``: files and dirs with exact owners and modes, links, syncs.

Only ``host.livefs`` calls these: they are how the config dir is written.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
from pathlib import Path

from gitops_mail.host.livefs.scan import Want, owner_mode

_NEW_DIR_MODE = 0o755
_ROOT_UID = 0
_LIBC = ctypes.CDLL(None, use_errno=True)


def write_file(path: Path, want: Want) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with open(os.open(path, flags, 0o600), "wb") as handle:
        handle.write(want.data)
        handle.flush()
        if (want.uid, want.gid) != (os.geteuid(), os.getegid()):
            os.fchown(handle.fileno(), want.uid, want.gid)
        os.fchmod(handle.fileno(), want.mode)  # after chown, which clears set-id bits


def make_dir(
    path: Path, like: os.stat_result | None, ids_mode: tuple[int, int, int] | None = None
) -> None:
    """Create ``path`` (if missing) with the owner and mode of ``like``, or 0755 root."""
    uid, gid, mode = ids_mode or (owner_mode(like) if like else (_ROOT_UID, 0, _NEW_DIR_MODE))
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
        if (uid, gid) != (os.geteuid(), os.getegid()):
            os.chown(path, uid, gid)
        os.chmod(path, mode)


def remove_empty_dir(path: Path) -> None:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY:  # someone put a file there meanwhile: keep it
            raise


def unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def backup_path(checkpoint: Path, index: int) -> Path:
    """Where a checkpoint keeps the old file of its change number ``index``."""
    return checkpoint / "files" / str(index)


def link_into(source: Path, target: Path) -> bool:
    """Hard-link ``source`` (itself, never a symlink's target) to ``target``; False if absent."""
    if not os.path.lexists(source):
        return False
    os.link(source, target, follow_symlinks=False)
    return True


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # a mount inside the config dir: copy instead
            raise
        shutil.copy2(source, target, follow_symlinks=False)
        info = os.lstat(source)
        os.chown(target, info.st_uid, info.st_gid)
        os.chmod(target, stat.S_IMODE(info.st_mode))


def sync_filesystem(path: Path) -> None:
    """Make everything written on ``path``'s filesystem durable.

    One syncfs(2) costs about what one fsync does, instead of one per file and
    directory (200 of them took 0.1-0.2 s here).
    """
    syncfs = getattr(_LIBC, "syncfs", None)
    if syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if syncfs(fd) != 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number), str(path))
    finally:
        os.close(fd)
