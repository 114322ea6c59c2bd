"""The state lock between real processes: waiting, --no-wait, a killed holder, bad state dirs."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gitops_mail.errors import GitopsMailError
from gitops_mail.host.lock import LockHeld, state_lock

DEADLINE = 20.0  # seconds; only reached when something is broken
DIR_HINT = "check state_dir in the host settings: it must be a directory this user can write"

# Takes the lock, says so, and holds it until stdin closes. With "spawn", first starts a
# long-lived grandchild (as the supervisor starts chasquid) and prints its pid.
_HOLDER = """
import subprocess, sys
from pathlib import Path
from gitops_mail.host.lock import state_lock
with state_lock(Path(sys.argv[1])):
    if sys.argv[2:] == ["spawn"]:
        child = subprocess.Popen(["sleep", "1000"], close_fds=False)
        print(child.pid, flush=True)
    print("locked", flush=True)
    sys.stdin.read()
print("released", flush=True)
"""


class Holder:
    """A separate process holding the lock until ``release`` or ``kill``."""

    def __init__(self, state_dir: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(state_dir), *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.stdout = self.process.stdout
        self.grandchild = int(self.stdout.readline()) if extra == ("spawn",) else None
        assert self.stdout.readline() == "locked\n"

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.stdout.readline() == "released\n"
        assert self.process.wait(DEADLINE) == 0

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(DEADLINE) == -signal.SIGKILL


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Callable[..., Holder]]:
    started: list[Holder] = []

    def start(*extra: str) -> Holder:
        started.append(Holder(tmp_path / "state", *extra))
        return started[-1]

    yield start
    for one in started:
        if one.grandchild is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(one.grandchild, signal.SIGKILL)
        if one.process.poll() is None:
            one.process.kill()
        one.process.wait(DEADLINE)
        for stream in (one.process.stdin, one.process.stdout):
            if stream is not None:
                stream.close()


def free(state_dir: Path) -> bool:
    """Whether the lock can be taken right now (and give it back)."""
    try:
        with state_lock(state_dir, wait=False):
            return True
    except LockHeld:
        return False


# --- taking and giving back --------------------------------------------------------------


def test_the_lock_file_is_made_in_a_new_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "var" / "lib" / "gitops-mail"
    with state_lock(state):
        assert stat.S_IMODE((state / "lock").stat().st_mode) == 0o600
    assert free(state)


def test_the_lock_is_given_back_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), state_lock(tmp_path):
        raise RuntimeError("boom")
    assert free(tmp_path)


def test_on_wait_is_not_called_when_the_lock_is_free(tmp_path: Path) -> None:
    calls: list[str] = []
    with state_lock(tmp_path, on_wait=lambda: calls.append("waited")):
        pass
    assert calls == []


def test_a_second_lock_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    with state_lock(tmp_path), pytest.raises(LockHeld), state_lock(tmp_path, wait=False):
        pass


# --- between processes ---------------------------------------------------------------------


def test_no_wait_fails_at_once_with_a_clear_message(
    tmp_path: Path, holder: Callable[..., Holder]
) -> None:
    holding = holder()
    with pytest.raises(LockHeld) as caught, state_lock(tmp_path / "state", wait=False):
        pytest.fail("the lock was taken twice")
    assert caught.value.message == f"another apply is running (it holds {tmp_path}/state/lock)"
    assert caught.value.hint == "wait for it, or run again without --no-wait"
    assert isinstance(caught.value, GitopsMailError)
    holding.release()
    assert free(tmp_path / "state")


def test_a_second_holder_waits_says_so_and_gets_the_lock_when_it_is_released(
    tmp_path: Path, holder: Callable[..., Holder]
) -> None:
    holding = holder()
    waiting, acquired = threading.Event(), threading.Event()

    def second() -> None:
        with state_lock(tmp_path / "state", on_wait=waiting.set):
            acquired.set()

    thread = threading.Thread(target=second, daemon=True)
    thread.start()
    assert waiting.wait(DEADLINE), "on_wait was not called"
    assert not acquired.is_set()
    assert holding.process.poll() is None  # still holding: the second one is really waiting
    holding.release()
    assert acquired.wait(DEADLINE), "the waiter never got the lock"
    thread.join(DEADLINE)
    assert free(tmp_path / "state")


def test_the_lock_is_released_when_its_holder_is_killed(
    tmp_path: Path, holder: Callable[..., Holder]
) -> None:
    holding = holder()
    assert not free(tmp_path / "state")
    holding.kill()
    assert free(tmp_path / "state")


def test_a_child_the_holder_started_does_not_keep_the_lock(
    tmp_path: Path, holder: Callable[..., Holder]
) -> None:
    holding = holder("spawn")
    assert holding.grandchild is not None
    holding.kill()
    os.kill(holding.grandchild, 0)  # the grandchild (like a supervised chasquid) still runs
    assert free(tmp_path / "state")


# --- a state dir that cannot be used ----------------------------------------------------------


_TRY = """
import sys
from pathlib import Path
from gitops_mail.errors import GitopsMailError
from gitops_mail.host.lock import state_lock
try:
    with state_lock(Path(sys.argv[1]), wait=False):
        print("locked")
except GitopsMailError as exc:
    print(exc.message)
    print(exc.hint)
"""


def try_as_unprivileged(state_dir: Path) -> str:
    """What taking the lock prints in a process held to file permissions, even as root."""
    caps = "-dac_override,-dac_read_search"
    prefix = ["setpriv", "--bounding-set", caps, "--inh-caps", caps] if os.geteuid() == 0 else []
    done = subprocess.run(
        [*prefix, sys.executable, "-c", _TRY, str(state_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=DEADLINE,
    )
    return done.stdout


def test_an_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o555)
    assert try_as_unprivileged(state) == (
        f"cannot open the state lock {state}/lock: Permission denied\n{DIR_HINT}\n"
    )
    assert os.listdir(state) == []


def test_a_state_dir_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    parent = tmp_path / "lib"
    parent.mkdir(mode=0o555)
    assert try_as_unprivileged(parent / "gitops-mail") == (
        f"cannot create the state dir {parent}/gitops-mail: Permission denied\n{DIR_HINT}\n"
    )


def test_an_existing_lock_file_is_enough_in_a_read_only_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with state_lock(state):
        pass
    state.chmod(0o555)
    assert try_as_unprivileged(state) == "locked\n"


def test_a_file_in_place_of_the_state_dir(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    with pytest.raises(GitopsMailError) as caught, state_lock(tmp_path / "state"):
        pytest.fail("locked a file")
    assert caught.value.message == f"the state dir {tmp_path}/state is not a directory"
    assert caught.value.hint == DIR_HINT


def test_a_file_in_place_of_a_parent_of_the_state_dir(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    with pytest.raises(GitopsMailError) as caught, state_lock(tmp_path / "state" / "sub"):
        pytest.fail("locked under a file")
    assert caught.value.message == (
        f"cannot create the state dir {tmp_path}/state/sub: Not a directory"
    )


def test_a_directory_in_place_of_the_lock_file(tmp_path: Path) -> None:
    (tmp_path / "lock").mkdir()
    with pytest.raises(GitopsMailError) as caught, state_lock(tmp_path):
        pytest.fail("locked a directory")
    assert caught.value.message == f"cannot open the state lock {tmp_path}/lock: Is a directory"
    assert caught.value.hint == DIR_HINT
