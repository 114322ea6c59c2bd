"""Run chasquid as our own child and start it again whenever it ends.

For hosts without systemd (containers, the demo, the tests): ``gitops-mail
supervise`` runs a ``Supervisor`` in the foreground, and the daemon can run
one in a thread of its own. Files in ``state_dir``:

- ``supervisor.lock``: locked (``flock``) for as long as a supervisor runs;
  holds its pid. A second supervisor for the same state dir is refused.
- ``chasquid.pid``: the current child's pid, rewritten (atomically) for each
  child, removed when the supervisor stops.
- ``chasquid.restart``: a restart request (see ``service.SuperviseService``):
  the child it names ends by request, so the next one starts at once and
  the crash back-off is left alone.
- ``chasquid.log``: chasquid's own output, appended, one header line per start.

Each is 0600 and opened without following a symlink (``host.statedir``).
chasquid runs as the ``chasquid`` user (``chasquid.user``; ``host.runas``),
keeping only ``CAP_NET_BIND_SERVICE`` (ambient) to bind ports 25, 465 and 587,
as Debian's unit runs it: a delivery agent or hook it starts never runs as
root. Its ``data_dir`` and ``mail_log_path`` must be that user's to write
(Debian's /var/lib/chasquid is).

A child that ends unasked is started again after a back-off delay (0.1 s,
doubling to 5 s; back to 0.1 s once a child has run 10 s), so a config that
makes chasquid exit at start cannot become a busy loop. Every child is reaped.
A chasquid left running by a supervisor that was killed (SIGKILL: no chance to
stop its child) is found through the pid file and stopped before a new one
starts, since it still holds the ports.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from gitops_mail.errors import GitopsMailError
from gitops_mail.host import localfs, procs, runas, statedir
from gitops_mail.host.localfs import atomic_write
from gitops_mail.host.lock import open_lock_file
from gitops_mail.host.service import (
    LOCK_FILE,
    LOG_FILE,
    PIDFILE,
    REQUEST_FILE,
    is_chasquid,
    read_pid,
)
from gitops_mail.host.settings import HostSettings

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0  # SIGTERM, then SIGKILL after this many seconds
TICK = 0.2  # how often the wait for a child's end looks at the ``stop`` event
POLL = 0.02  # other waits: back-off (for a restart request), an orphan's end
HISTORY = 100  # exits remembered


class Backoff:
    """Delays before restarting a child that ended unasked."""

    def __init__(self, initial: float = 0.1, maximum: float = 5.0, reset_after: float = 10.0):
        self.initial, self.maximum, self.reset_after = initial, maximum, reset_after
        self._next = initial

    def delay(self, uptime: float) -> float:
        """The delay after a child that ran ``uptime`` seconds; the next one doubles."""
        if uptime >= self.reset_after:
            self._next = self.initial
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


@dataclass(frozen=True)
class ChildExit:
    pid: int
    returncode: int  # negative: killed by that signal
    started_at: float  # time.monotonic() at its start
    uptime: float  # seconds
    requested: bool  # ended by a restart request
    delay: float  # seconds waited before the next start


class Supervisor:
    def __init__(self, settings: HostSettings) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir
        self.backoff = Backoff()
        self._lock = threading.RLock()
        self._child: procs.Child | None = None
        self._started_at = 0.0
        self._resume_at = 0.0  # monotonic time of the next start while there is no child
        self._lock_fd: int | None = None
        self._exits: deque[ChildExit] = deque(maxlen=HISTORY)

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.pid if child is not None and child.returncode is None else None

    @property
    def exits(self) -> tuple[ChildExit, ...]:
        """The most recent child exits, oldest first."""
        return tuple(self._exits)

    def argv(self) -> list[str]:
        chasquid = self.settings.chasquid
        return [str(chasquid.binary), f"-config_dir={chasquid.config_dir}", *chasquid.args]

    def command(self) -> list[str]:
        """``argv`` as the chasquid user, able to bind ports below 1024."""
        runas.require_executable(self.settings.chasquid.binary)
        user = runas.lookup(self.settings.chasquid.user)
        return runas.command(self.argv(), user, bind_low_ports=True)

    def start(self) -> None:
        """Take the supervisor lock (once) and start chasquid if no child runs.

        Raises ``GitopsMailError`` if another supervisor holds the lock, or
        ``CommandError`` if chasquid cannot be started. ``shutdown`` undoes it.
        """
        with self._lock:
            if self._lock_fd is None:
                self._take_lock()
                self._stop_orphan()
                _remove(self.state_dir / REQUEST_FILE)
            if self._child is None:
                self._spawn()

    def restart_child(self) -> None:
        """Stop the child (if any) and start a new one now; returns once it is started."""
        with self._lock:
            if self._lock_fd is None:
                self.start()
                return
            if self._child is not None:
                log.info("restarting chasquid pid=%d on request", self._child.pid)
                self._reap(self._child, requested=True, stop=True)
            self._spawn()

    def run_forever(self, stop: threading.Event) -> int:
        """Keep chasquid running until ``stop`` is set (or SIGTERM/SIGINT); then stop it.

        Signal handlers are installed only when called in the main thread;
        elsewhere the owner sets ``stop``. Returns 0.
        """
        with _signals_set(stop):
            try:
                self.start()
                while not stop.is_set():
                    self._step(stop)
            finally:
                self.shutdown()
        return 0

    def shutdown(self) -> None:
        """Stop and reap the child, remove the pid file, release the lock."""
        with self._lock:
            if self._child is not None:
                log.info("stopping chasquid pid=%d", self._child.pid)
                self._reap(self._child, requested=True, stop=True)
            if self._lock_fd is not None:  # the files are ours only while we hold it
                _remove(self.state_dir / PIDFILE)
                _remove(self.state_dir / REQUEST_FILE)
                os.close(self._lock_fd)
                self._lock_fd = None

    # --- the loop ------------------------------------------------------------------

    def _step(self, stop: threading.Event) -> None:
        with self._lock:  # children are reaped only under the lock: the pid is still ours
            child = self._child
            pidfd = _pidfd(child) if child is not None else None
        if child is None:
            self._wait_backoff(stop)
            return
        try:
            self._wait_exit(stop, child, pidfd)
        finally:
            if pidfd is not None:
                os.close(pidfd)
        with self._lock:
            if child is self._child and child.poll() is not None:
                self._reap(child, requested=self._take_request(child.pid))

    def _wait_exit(self, stop: threading.Event, child: procs.Child, pidfd: int | None) -> None:
        """Until ``child`` ends (``pidfd`` readable; polled without one) or ``stop``."""
        while not stop.is_set() and child is self._child:
            if pidfd is not None and select.select([pidfd], [], [], TICK)[0]:
                return
            if pidfd is None and child.poll() is not None:
                return
            if pidfd is None:
                time.sleep(POLL)

    def _wait_backoff(self, stop: threading.Event) -> None:
        """Until the back-off delay is over or a restart is requested; then start."""
        while not stop.is_set() and self._child is None:
            left = self._resume_at - time.monotonic()
            if left <= 0 or self._take_request(None):
                break
            time.sleep(min(left, POLL))
        with self._lock:
            if not stop.is_set() and self._child is None:
                self._spawn_or_back_off()

    # --- children --------------------------------------------------------------------

    def _spawn(self) -> None:
        logfile = self.state_dir / LOG_FILE
        command = self.command()
        with _open_log(logfile) as output:
            child = procs.start(command, output=output.fileno())
        self._child, self._started_at = child, time.monotonic()
        atomic_write(self.state_dir / PIDFILE, f"{child.pid}\n".encode(), mode=statedir.FILE_MODE)
        log.info("started chasquid pid=%d, its output goes to %s", child.pid, logfile)

    def _spawn_or_back_off(self) -> None:
        try:
            self._spawn()
        except GitopsMailError as exc:  # the binary is gone, the state dir unwritable
            delay = self.backoff.delay(0.0)
            self._resume_at = time.monotonic() + delay
            log.error("cannot start chasquid: %s; trying again in %.1f s", exc.message, delay)

    def _reap(self, child: procs.Child, *, requested: bool, stop: bool = False) -> None:
        """Record the end of ``child`` (stopping it first if ``stop``); forget it."""
        if stop:
            procs.stop(child, STOP_TIMEOUT)
        code, uptime = child.wait(), time.monotonic() - self._started_at
        if requested and uptime >= self.backoff.reset_after:
            self.backoff.reset()
        delay = 0.0 if requested else self.backoff.delay(uptime)
        self._exits.append(ChildExit(child.pid, code, self._started_at, uptime, requested, delay))
        self._child, self._resume_at = None, time.monotonic() + delay
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        if requested:
            log.info("chasquid pid=%d %s after %.1f s, as asked", child.pid, how, uptime)
            return
        logfile = self.state_dir / LOG_FILE
        log.warning(
            "chasquid pid=%d %s after %.1f s; starting it again in %.1f s (its log: %s)",
            *(child.pid, how, uptime, delay, logfile),
        )

    def _take_request(self, pid: int | None) -> bool:
        """Whether a restart was requested for child ``pid`` (None: for any); consume it.

        A request names the child it ends, or 0 when there was none running.
        """
        path = self.state_dir / REQUEST_FILE
        if not path.exists():
            return False
        asked = read_pid(path)  # None for 0
        _remove(path)
        return pid is None or asked is None or asked == pid

    # --- the lock, and an orphan ------------------------------------------------------------

    def _take_lock(self) -> None:
        statedir.prepare(self.state_dir)
        path = self.state_dir / LOCK_FILE
        fd = open_lock_file(path, "the supervisor's lock")
        end = time.monotonic() + 0.5  # a reader may hold a shared lock for a moment
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < end:
                    time.sleep(0.01)
                    continue
                os.close(fd)
                raise self._locked(read_pid(path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _locked(self, holder: int | None) -> GitopsMailError:
        return GitopsMailError(
            f"another gitops-mail supervisor is running for state dir {self.state_dir}"
            + (f" (pid {holder})" if holder else ""),
            "stop it first; only one supervisor may run chasquid for a state dir",
        )

    def _stop_orphan(self) -> None:
        """Stop a chasquid that a killed supervisor left running (it holds the ports)."""
        pid = read_pid(self.state_dir / PIDFILE)
        if pid is None or not is_chasquid(pid, self.settings.chasquid):
            return
        log.warning("stopping chasquid pid=%d, left running by a supervisor that ended", pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            end = time.monotonic() + STOP_TIMEOUT
            while time.monotonic() < end:
                if not is_chasquid(pid, self.settings.chasquid):
                    return
                time.sleep(POLL)
        raise GitopsMailError(
            f"chasquid pid {pid}, left running by an earlier supervisor, does not stop",
            "stop it by hand, then start the supervisor again",
        )


@contextlib.contextmanager
def _open_log(path: Path) -> Iterator[BinaryIO]:
    """``path`` opened for appending (0600, never through a symlink), with a line that
    marks a new start."""
    try:
        fd = localfs.open_own(path, os.O_WRONLY | os.O_APPEND, statedir.FILE_MODE)
        output = open(fd, "ab")  # noqa: SIM115 - closed below, after the child has it
    except OSError as exc:
        raise GitopsMailError(
            f"cannot open chasquid's log {path}: {exc.strerror}",
            "check that the state dir is writable",
        ) from exc
    with output:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        output.write(f"# gitops-mail supervisor: starting chasquid at {stamp}\n".encode())
        output.flush()
        yield output


def _pidfd(child: procs.Child) -> int | None:
    """A descriptor that becomes readable when ``child`` ends (None: poll instead)."""
    try:
        return os.pidfd_open(child.pid)
    except OSError:  # no pidfd on this kernel, or the child is already reaped
        return None


@contextlib.contextmanager
def _signals_set(stop: threading.Event) -> Iterator[None]:
    """In the main thread, SIGTERM and SIGINT set ``stop`` while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _remove(path: os.PathLike[str]) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
