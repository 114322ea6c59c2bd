"""The state lock shared by ``gitops-mail apply``, ``rollback`` and the daemon.

An advisory ``flock`` on ``state_dir/lock``: the kernel drops it when the
holder dies, so a killed apply never leaves a stale lock behind. ``held``
asks the same of any lock file (the daemon's pid file, the supervisor's lock).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gitops_mail.errors import GitopsMailError


class LockHeld(GitopsMailError):
    """Another apply holds the lock and we were told not to wait."""


@contextmanager
def state_lock(
    state_dir: Path, *, wait: bool = True, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    path = state_dir / "lock"
    fd = _open(state_dir, path)
    try:
        _acquire(fd, path, wait=wait, on_wait=on_wait)
        yield
    finally:
        os.close(fd)


def held(path: Path) -> bool:
    """Whether some process holds a ``flock`` on ``path``; False when there is no such file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops a shared lock taken just now
    return False


def _open(state_dir: Path, path: Path) -> int:
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise _unusable(f"the state dir {state_dir} is not a directory") from None
    except OSError as exc:
        raise _unusable(f"cannot create the state dir {state_dir}: {exc.strerror}") from exc
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise _unusable(f"cannot open the state lock {path}: {exc.strerror}") from exc


def _unusable(message: str) -> GitopsMailError:
    return GitopsMailError(
        message, "check state_dir in the host settings: it must be a directory this user can write"
    )


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
