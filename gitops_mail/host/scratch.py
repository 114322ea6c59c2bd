"""Throwaway directories that a killed gitops-mail cannot leak.

Each one is made in a known place (``scratch_dir(parent, prefix)``), never in
/tmp, and holds a ``flock`` on itself for as long as it is in use. Leaving
the block removes it; a ``kill -9`` cannot, but the lock dies with the
process, so the next ``scratch_dir`` in the same place removes every
``prefix*`` directory that nobody holds before making its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gitops_mail.errors import GitopsMailError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@contextlib.contextmanager
def scratch_dir(
    parent: Path, prefix: str, *, owner: tuple[int, int] | None = None
) -> Iterator[Path]:
    """A new directory ``parent/prefix*`` (0700, given to ``owner`` (uid, gid) if set).

    Leftovers of killed runs are removed first. Raises ``GitopsMailError`` when
    ``parent`` cannot hold it.
    """
    remove_leftovers(parent, prefix)
    path, fd = _make_locked(parent, prefix)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def _make_locked(parent: Path, prefix: str) -> tuple[Path, int]:
    """A new directory and a descriptor holding its lock.

    Another run cleaning up may take a directory between its making and its
    locking (it looks like a leftover then); that one is gone, so make another.
    """
    try:
        for _ in range(10):
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
            fd = os.open(path, _DIR_FLAGS)
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _same(path, fd):
                return path, fd
            os.close(fd)
    except OSError as exc:
        raise GitopsMailError(
            f"cannot make a work directory in {parent}: {exc.strerror}",
            "check that it is a directory root can write",
        ) from exc
    raise GitopsMailError(f"cannot keep a work directory in {parent}: each one vanished")


def _same(path: Path, fd: int) -> bool:
    try:
        return os.path.samestat(os.lstat(path), os.fstat(fd))
    except OSError:
        return False


def remove_leftovers(parent: Path, prefix: str) -> list[Path]:
    """Remove every ``parent/prefix*`` directory nobody holds; the ones removed."""
    try:
        with os.scandir(parent) as entries:
            names = sorted(e.name for e in entries if e.name.startswith(prefix))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise GitopsMailError(f"cannot read {parent}: {exc.strerror}") from exc
    return [parent / name for name in names if _remove_if_free(parent / name)]


def _remove_if_free(path: Path) -> bool:
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return False  # only ever a directory of ours
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False  # in use
    try:
        shutil.rmtree(path, ignore_errors=True)
    finally:
        os.close(fd)
    return True
