"""The daemon's queue, back-off and small process helpers, without a daemon.

``Schedule`` takes the time as an argument, so coalescing, settling and
retries are checked at exact instants, with no sleep and no thread.
"""

from __future__ import annotations

import os
import random
import socket
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs
from watchdog.events import FileClosedNoWriteEvent, FileModifiedEvent, FileMovedEvent

from gitops_mail.cli.daemon import Notifier
from gitops_mail.daemon import status as daemonstatus
from gitops_mail.daemon.triggers import (
    Backoff,
    Job,
    Schedule,
    WorkQueue,
    _Matching,
    git_dir,
    poll_delay,
)
from gitops_mail.errors import GitopsMailError


class FixedRandom(random.Random):
    """``uniform(a, b)`` returns the point ``at`` (0..1) of the way from a to b."""

    def __init__(self, at: float) -> None:
        super().__init__(0)
        self.at = at

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.at


# --- Schedule ---------------------------------------------------------------------------


def test_nothing_poked_nothing_to_take() -> None:
    schedule = Schedule()
    assert (schedule.take(100.0), schedule.due) == (None, None)


def test_a_burst_of_pokes_is_one_job_with_every_reason_once() -> None:
    schedule = Schedule()
    for at, reason in enumerate(["ref", "ref", "poll", "ref", "SIGUSR1"]):
        schedule.poke(reason, float(at), force=reason == "SIGUSR1", fetch=reason == "poll")

    assert schedule.due == 0.0  # due since the first poke
    assert schedule.take(4.0) == Job(("ref", "poll", "SIGUSR1"), force=True, fetch=True)
    assert (schedule.take(4.0), schedule.due) == (None, None)


def test_a_job_is_not_taken_before_it_is_due() -> None:
    schedule = Schedule()
    schedule.poke("certificate", 10.0, settle=1.0)

    assert schedule.take(10.999) is None
    assert schedule.take(11.0) == Job(("certificate",))


def test_each_settling_poke_pushes_the_job_back() -> None:
    schedule = Schedule()
    schedule.poke("certificate", 10.0, force=True, settle=1.0)
    schedule.poke("certificate", 10.8, force=True, settle=1.0)

    assert schedule.due == 11.8
    assert schedule.take(11.5) is None
    assert schedule.take(11.8) == Job(("certificate",), force=True)


def test_an_immediate_poke_ends_the_settling() -> None:
    schedule = Schedule()
    schedule.poke("certificate", 10.0, force=True, settle=1.0)
    schedule.poke("ref", 10.2)

    assert schedule.take(10.2) == Job(("certificate", "ref"), force=True)


def test_a_settling_poke_does_not_delay_work_already_due() -> None:
    schedule = Schedule()
    schedule.poke("ref", 10.0)
    schedule.poke("certificate", 10.1, settle=1.0)

    assert schedule.due == 10.0
    assert schedule.take(10.1) == Job(("ref", "certificate"))


def test_a_retry_waits_its_delay_unless_new_work_comes() -> None:
    schedule = Schedule()
    schedule.retry(Job(("start",), fetch=True), 20.0, 4.0)
    assert schedule.take(23.9) is None
    assert schedule.take(24.0) == Job(("start",), fetch=True)

    schedule.retry(Job(("ref",)), 30.0, 60.0)
    schedule.poke("ref", 31.0)  # a new push does not wait for the back-off
    assert schedule.take(31.0) == Job(("ref",))


def test_a_retry_keeps_a_sooner_pending_job() -> None:
    schedule = Schedule()
    schedule.poke("SIGUSR1", 5.0, force=True)
    schedule.retry(Job(("ref",)), 5.0, 8.0)

    assert schedule.take(5.0) == Job(("SIGUSR1", "ref"), force=True)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ref", "poll", "certificate", "SIGUSR1"]),
            st.floats(0, 5),
            st.booleans(),
            st.booleans(),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_any_burst_is_taken_as_one_job_no_later_than_the_last_poke_settles(
    pokes: list[tuple[str, float, bool, bool]],
) -> None:
    schedule, now = Schedule(), 0.0
    for reason, gap, force, settle in pokes:
        now += gap
        schedule.poke(reason, now, force=force, settle=1.0 if settle else 0)

    job = schedule.take(now + 1.0)

    assert job is not None
    assert sorted(job.reasons) == sorted({p[0] for p in pokes})
    assert job.force == any(p[2] for p in pokes)
    assert schedule.take(now + 1000) is None


# --- WorkQueue --------------------------------------------------------------------------


def test_the_queue_hands_out_a_due_job_and_none_once_closed() -> None:
    queue = WorkQueue(clock=lambda: 50.0)
    queue.poke("ref")
    assert queue.pending
    assert queue.take() == Job(("ref",))
    assert not queue.pending

    queue.close()
    assert queue.take() is None


def test_a_waiting_worker_is_woken_by_a_poke_and_by_close() -> None:
    queue = WorkQueue()
    taken: list[Job | None] = []
    first = threading.Event()

    def work() -> None:
        taken.append(queue.take())
        first.set()
        taken.append(queue.take())

    worker = threading.Thread(target=work)
    worker.start()
    queue.poke("ref")
    assert first.wait(10)
    queue.close()  # while the worker waits for a second job, or before it does
    worker.join(10)

    assert not worker.is_alive()
    assert taken == [Job(("ref",)), None]


# --- Backoff and poll jitter ------------------------------------------------------------


def test_backoff_doubles_from_1_s_to_5_min() -> None:
    middle = FixedRandom(0.5)  # no jitter
    delays = [Backoff().delay(n, middle) for n in range(1, 13)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]


def test_backoff_jitter_spreads_each_delay_and_never_passes_5_min() -> None:
    assert Backoff().delay(3, FixedRandom(0.0)) == pytest.approx(3.2)
    assert Backoff().delay(3, FixedRandom(1.0)) == pytest.approx(4.8)
    assert Backoff().delay(9, FixedRandom(1.0)) == 300  # 256 * 1.2 is capped
    assert Backoff().delay(10_000, FixedRandom(1.0)) == 300


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=100), st.integers(min_value=0))
def test_backoff_stays_within_its_bounds(failures: int, seed: int) -> None:
    delay = Backoff().delay(failures, random.Random(seed))  # noqa: S311
    base = min(300.0, 2.0 ** (failures - 1))
    assert 0.8 * base <= delay <= min(300.0, 1.2 * base)


def test_poll_delay_is_the_interval_plus_or_minus_10_percent() -> None:
    assert poll_delay(60, FixedRandom(0.0)) == pytest.approx(54)
    assert poll_delay(60, FixedRandom(1.0)) == pytest.approx(66)


# --- inotify event filter, git dir ------------------------------------------------------


def test_a_ref_renamed_into_place_pokes_other_paths_do_not(tmp_path: Path) -> None:
    ref = tmp_path / "refs" / "heads" / "main"
    seen: list[str] = []
    handler = _Matching([ref, tmp_path / "packed-refs"], seen.append)

    handler.on_any_event(FileModifiedEvent(str(ref) + ".lock"))
    handler.on_any_event(FileModifiedEvent(str(tmp_path / "refs" / "heads" / "other")))
    handler.on_any_event(FileClosedNoWriteEvent(str(tmp_path / "HEAD")))
    assert seen == []
    handler.on_any_event(FileMovedEvent(str(ref) + ".lock", str(ref)))
    handler.on_any_event(FileModifiedEvent(os.fsencode(tmp_path / "packed-refs")))
    assert seen == [str(ref), str(tmp_path / "packed-refs")]


def test_git_dir_of_a_bare_repo_a_work_tree_and_a_linked_work_tree(tmp_path: Path) -> None:
    bare, work, linked = tmp_path / "bare.git", tmp_path / "work", tmp_path / "linked"
    bare.mkdir()
    (work / ".git").mkdir(parents=True)
    linked.mkdir()
    (linked / ".git").write_text("gitdir: ../work/.git/worktrees/linked\n")

    assert git_dir(bare) == bare
    assert git_dir(work) == work / ".git"
    assert git_dir(linked) == work / ".git" / "worktrees" / "linked"


# --- the pid file -----------------------------------------------------------------------


def test_the_pid_file_is_held_while_the_daemon_runs_and_refuses_a_second(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert daemonstatus.daemon_pid(state) is None

    with daemonstatus.hold_pid_file(state):
        assert daemonstatus.daemon_pid(state) == os.getpid()
        with pytest.raises(GitopsMailError) as raised, daemonstatus.hold_pid_file(state):
            pass
        assert raised.value.message == (
            f"a gitops-mail daemon already runs for {state} (pid {os.getpid()})"
        )

    assert not (state / "daemon.pid").exists()
    assert daemonstatus.daemon_pid(state) is None


def test_a_pid_file_nobody_holds_names_no_daemon(tmp_path: Path) -> None:
    (tmp_path / "daemon.pid").write_text("1\n")  # left by a killed daemon; pid 1 exists
    assert daemonstatus.daemon_pid(tmp_path) is None


# --- systemd notify ---------------------------------------------------------------------


def test_notify_settings_are_read_and_removed_from_the_environment() -> None:
    environ = {"NOTIFY_SOCKET": "@name", "WATCHDOG_USEC": "60000000", "PATH": "/bin"}

    notifier = Notifier.from_environ(environ)

    assert notifier == Notifier("\0name", 30.0)
    assert environ == {"PATH": "/bin"}


def test_the_watchdog_is_for_the_pid_systemd_names() -> None:
    other = {"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}
    ours = {**other, "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_environ(other) == Notifier("/run/n", None)
    assert Notifier.from_environ(ours) == Notifier("/run/n", 1.0)
    assert Notifier.from_environ({}) == Notifier(None, None)


@pytest.mark.parametrize("abstract", [False, True])
def test_notify_sends_one_datagram_to_a_path_or_an_abstract_socket(
    tmp_path: Path, abstract: bool
) -> None:
    name = f"@gitops-mail-unit-{os.urandom(4).hex()}" if abstract else str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name[1:] if abstract else name)
        sock.settimeout(10)
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": name})

        notifier.send("READY=1", "STATUS=live 1a2b3c4")

        assert sock.recv(4096) == b"READY=1\nSTATUS=live 1a2b3c4"


def test_notify_without_a_listener_logs_a_warning_and_goes_on(tmp_path: Path) -> None:
    nobody = str(tmp_path / "nobody")
    with capture_logs() as events:
        Notifier(nobody, None).send("READY=1")
    assert events == [
        {
            "event": "daemon.notify_failed",
            "log_level": "warning",
            "socket": nobody,
            "error": "[Errno 2] No such file or directory",
        }
    ]


@pytest.mark.parametrize(
    ("result", "message", "shown"),
    [
        (
            "applied",
            "applied 1a2b3c4: restarted chasquid, probes ok",
            "applied 1a2b3c4: restarted chasquid, probes ok",
        ),
        (
            "unchanged",
            "1a2b3c4 is already live; nothing to do",
            "unchanged: 1a2b3c4 is already live; nothing to do",
        ),
        ("error", "cannot restart chasquid", "error 1a2b3c4: cannot restart chasquid"),
    ],
)
def test_a_pass_names_its_result_and_revision_once(result: str, message: str, shown: str) -> None:
    assert daemonstatus.pass_text(result, "1a2b3c4", message) == shown
