"""The state lock shared by ``gitops-mail apply``, ``rollback`` and the daemon.

An advisory ``flock`` on ``state_dir/lock``: the kernel drops it when the
holder dies, so a killed apply never leaves a stale lock behind. ``held``
asks the same of any lock file (the daemon's pid file, the supervisor's lock).

Taking it first prepares the state dir (``statedir.prepare``: made 0700,
refused when another user can change it). The lock file is opened without
following a symlink and only when it is a regular file of ours (0600): a
``lock`` someone else put there is refused, and nothing is made through it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gitops_mail.errors import GitopsMailError
from gitops_mail.host import localfs, statedir

LOCK_FILE = "lock"
_PLANTED_HINT = (
    "gitops-mail never follows a symlink there, nor uses another user's file: "
    "remove it (someone may have put it there to make root write elsewhere), then run again"
)


class LockHeld(GitopsMailError):
    """Another apply holds the lock and we were told not to wait."""


@contextmanager
def state_lock(
    state_dir: Path, *, wait: bool = True, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    path = state_dir / LOCK_FILE
    statedir.prepare(state_dir)
    fd = open_lock_file(path, "the state lock")
    try:
        _acquire(fd, path, wait=wait, on_wait=on_wait)
        yield
    finally:
        os.close(fd)


def open_lock_file(path: Path, what: str) -> int:
    """A descriptor of the lock file ``path`` (0600, made if missing); a clear error if not."""
    try:
        return localfs.open_own(path, os.O_RDWR, statedir.FILE_MODE)
    except localfs.NotOurs as exc:
        raise GitopsMailError(f"cannot open {what} {path}: {exc.strerror}", _PLANTED_HINT) from None
    except OSError as exc:
        raise GitopsMailError(f"cannot open {what} {path}: {exc.strerror}", statedir.HINT) from exc


def held(path: Path) -> bool:
    """Whether some process holds a ``flock`` on ``path``; False when there is no such file
    (or only a symlink, which no lock of ours ever is)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops a shared lock taken just now
    return False


def _acquire(fd: int, path: Path, *, wait: bool, on_wait: Callable[[], None] | None) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        if not wait:
            raise LockHeld(
                f"another apply is running (it holds {path})",
                "wait for it, or run again without --no-wait",
            ) from None
    if on_wait is not None:
        on_wait()
    fcntl.flock(fd, fcntl.LOCK_EX)
