"""Waiting in tests: poll a predicate until the event it checks has happened.

The wait ends at the event. Its time bound only turns a hang (the event never
comes) into a failure, so it is never shorter than ``HANG_BOUND``: a loaded
machine is slow, not wrong. The short interval between checks is how often
the event is looked for, not a guess at how long it takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
HANG_BOUND = 120.0  # seconds: the least a poll waits before it calls the event missing


def poll(
    predicate: Callable[[], T], timeout: float = 10.0, what: str = "", *, interval: float = 0.01
) -> T:
    """Call ``predicate`` until it returns something truthy; return that.

    The bound is the longer of ``timeout`` (the caller's idea of a hang) and ``HANG_BOUND``.
    """
    timeout = max(timeout, HANG_BOUND)
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        time.sleep(interval)
