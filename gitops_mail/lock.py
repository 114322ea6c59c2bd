"""The state lock shared by ``gitops-mail apply``, ``rollback`` and the daemon.

An advisory ``flock`` on ``state_dir/lock``: the kernel drops it when the
holder dies, so a killed apply never leaves a stale lock behind.
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
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise GitopsMailError(
            f"cannot open the state lock {path}: {exc.strerror}",
            "check that the state_dir of the host settings is writable",
        ) from exc
    try:
        _acquire(fd, path, wait=wait, on_wait=on_wait)
        yield
    finally:
        os.close(fd)


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
