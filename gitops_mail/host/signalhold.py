"""Signals whose handlers raise, held while a step must not be cut in two.

Python runs a signal's handler in the main thread between two steps of its
code. A handler that raises (``KeyboardInterrupt``, an apply's
``Terminated``) can so land anywhere: between starting a child and taking
charge of it, or halfway through stopping one. ``held`` makes such a step
whole: the signal waits until the block ends and then acts as it would have.
``host.procs`` starts and stops children inside it.

The signals are held by swapping Python's handlers, not by blocking them in
the kernel: a child inherits the mask of blocked signals, and one started
with SIGTERM blocked could not be stopped by it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

HELD_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """In the main thread, a ``HELD_SIGNALS`` handler runs only after the block.

    The handlers are swapped for one that notes the signal; leaving the block
    puts them back and raises each noted signal again, so its own handler runs
    there. Elsewhere, and for a signal with no Python handler (its default
    action, or ignored), nothing changes: Python runs handlers only in the
    main thread, and a default action ends the process, which a parent-death
    signal answers (``host.runas``).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []

    def note(signum: int, frame: object) -> None:
        if signum not in noted:
            noted.append(signum)

    previous: dict[int, Any] = {}
    try:
        for sig in HELD_SIGNALS:
            if callable(signal.getsignal(sig)):
                previous[sig] = signal.signal(sig, note)
        yield
    finally:
        try:
            _put_back(previous)
        finally:
            for signum in noted:
                signal.raise_signal(signum)


def _put_back(handlers: dict[int, Any]) -> None:
    """Install ``handlers``, all of them, even if one already put back raises meanwhile.

    ``signal.signal`` runs pending handlers before it swaps; one that raises
    stops that swap, so it is tried again, and the first exception is raised
    at the end.
    """
    raised: BaseException | None = None
    for sig, handler in handlers.items():
        while True:
            try:
                signal.signal(sig, handler)
                break
            except BaseException as exc:  # re-raised below, after the rest
                raised = raised or exc
    if raised is not None:
        raise raised
