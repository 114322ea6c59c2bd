"""Bounds a process puts on itself: memory, and time by the clock and by the CPU.

The push hooks run on input the pusher chose; they bound themselves at
start with the host settings' ``limits:`` (``hook_seconds``,
``hook_memory_mb``), read at every run, so changing the settings needs no
reinstall, and the bound costs no extra program (``prlimit``, ``timeout``).

- Memory: ``RLIMIT_DATA`` (heap and private writable mappings: everything
  Python allocates), not ``RLIMIT_AS``. git, a child that inherits the limit,
  reads objects through file mappings as large as a loose object or a pack
  window; those count toward the address space (``git cat-file`` cannot even
  tell the size of a 300 MB object under a 256 MB ``RLIMIT_AS``) but not
  toward the data limit. Past the limit an allocation fails: ``MemoryError``.
- Time: ``SIGALRM`` after ``seconds`` raises ``TimeUp`` wherever Python runs;
  a ``BaseException``, so no ``except Exception`` swallows it. A process
  spinning inside C code runs no Python handler: ``RLIMIT_CPU`` a few seconds
  later kills it (``SIGXCPU``, then ``SIGKILL``), and a hook that dies
  rejects the push all the same.
"""

from __future__ import annotations

import math
from types import FrameType

CPU_GRACE_S = 5  # CPU seconds past the deadline before the kernel ends the process
_expired: list[float] = []  # the deadline that passed, once it has


class TimeUp(BaseException):
    """The deadline set by ``bound_self`` passed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"still running after {seconds:g} s")
        self.seconds = seconds


def bound_self(seconds: float, memory_mb: int) -> None:
    """From now on: at most ``memory_mb`` MB of data, ``TimeUp`` after ``seconds``."""
    import resource  # noqa: PLC0415 - only processes that bound themselves need it
    import signal  # noqa: PLC0415

    _lower(resource.RLIMIT_DATA, memory_mb << 20)
    _lower(resource.RLIMIT_CPU, math.ceil(seconds) + CPU_GRACE_S, hard_extra=1)

    def time_up(signum: int, frame: FrameType | None) -> None:
        _expired.append(seconds)
        raise TimeUp(seconds)

    signal.signal(signal.SIGALRM, time_up)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def disarm() -> None:
    """No ``TimeUp`` from now on (the CPU and memory limits stay)."""
    import signal  # noqa: PLC0415

    signal.setitimer(signal.ITIMER_REAL, 0)


def timed_out() -> bool:
    """Whether the deadline passed, even if something caught ``TimeUp``."""
    return bool(_expired)


def _lower(which: int, soft: int, *, hard_extra: int = 0) -> None:
    """Lower a limit to ``soft`` (hard: ``soft + hard_extra``); a lower one set before stays."""
    import resource  # noqa: PLC0415

    def lowest(*limits: int) -> int:
        return min(limit for limit in limits if limit != resource.RLIM_INFINITY)

    old_soft, old_hard = resource.getrlimit(which)
    hard = lowest(soft + hard_extra, old_hard)
    resource.setrlimit(which, (lowest(soft, old_soft, hard), hard))
