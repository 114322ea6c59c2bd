"""signalhold.held: a raising handler acts after the block, never inside it."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from gitops_mail.host import signalhold


class Stopped(BaseException):
    pass


def stop(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


@pytest.fixture
def raising_sigterm() -> Iterator[None]:
    """SIGTERM and SIGINT raise, whatever the run inherited (a background job starts
    with SIGINT ignored, which ``held`` rightly leaves alone)."""
    previous = signal.signal(signal.SIGTERM, stop), signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])


@pytest.mark.usefixtures("raising_sigterm")
def test_a_signal_in_the_block_raises_when_it_ends() -> None:
    steps = []
    with pytest.raises(Stopped), signalhold.held():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # twice: acts once, as the kernel's would
        steps.append("the rest of the block ran")
    assert steps == ["the rest of the block ran"]
    assert signal.getsignal(signal.SIGTERM) is stop


@pytest.mark.usefixtures("raising_sigterm")
def test_without_a_signal_nothing_happens_and_the_handler_is_back() -> None:
    with signalhold.held():
        assert signal.getsignal(signal.SIGTERM) is not stop
    assert signal.getsignal(signal.SIGTERM) is stop
    assert signal.getsignal(signal.SIGINT) is stop


@pytest.mark.usefixtures("raising_sigterm")
def test_an_exception_of_the_block_still_puts_the_handlers_back() -> None:
    with pytest.raises(ValueError), signalhold.held():
        raise ValueError("from the block")
    assert signal.getsignal(signal.SIGTERM) is stop


def test_a_default_action_is_left_alone() -> None:
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with signalhold.held():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


@pytest.mark.usefixtures("raising_sigterm")
def test_outside_the_main_thread_it_changes_nothing() -> None:
    seen: list[object] = []

    def body() -> None:
        with signalhold.held():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [stop]
