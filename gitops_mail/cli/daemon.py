"""``gitops-mail daemon`` and ``gitops-mail reconcile-now``.

The daemon runs until SIGTERM or SIGINT (then the current pass finishes and
it exits 0); SIGUSR1 and SIGHUP force a pass. Signals reach the main thread
through ``signal.set_wakeup_fd``, so no handler ever takes a lock. It holds
``state_dir/daemon.pid`` (an ``flock``, so a second daemon is refused and a
pid left by a killed one is never trusted) and speaks systemd's notify
protocol without a library: ``READY=1`` after the first pass, ``STATUS=`` after
each, ``WATCHDOG=1`` every ``WatchdogSec`` / 2 while the worker is healthy.

``reconcile-now`` signals that daemon and, unless ``--no-wait``, waits for the
result of a pass that started after it asked (read from ``daemon.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from gitops_mail import logs
from gitops_mail.core.printable import shown_lines
from gitops_mail.daemon.status import daemon_pid, hold_pid_file, pass_text, read_status
from gitops_mail.errors import GitopsMailError
from gitops_mail.host import settings as hostsettings

if TYPE_CHECKING:
    from gitops_mail.daemon.worker import Daemon

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
PASS_SIGNALS = (signal.SIGUSR1, signal.SIGHUP)
IDLE_TICK_S = 5.0  # how often the main loop looks at the worker without a watchdog
WAIT_POLL_S = 0.05  # reconcile-now: how often daemon.json is read
GOOD_RESULTS = ("applied", "unchanged")

log = logs.get_logger("gitops_mail.daemon")


def run(args: argparse.Namespace) -> int:
    settings = hostsettings.load(getattr(args, "config", None))
    if args.command == "reconcile-now":
        return reconcile_now(settings, wait=not args.no_wait, timeout=args.timeout)
    logs.configure()
    return serve(settings)


def serve(settings: hostsettings.HostSettings) -> int:
    from gitops_mail import logs  # noqa: PLC0415 - the daemon's imports, only for the daemon
    from gitops_mail.daemon.afterpass import build_hooks  # noqa: PLC0415
    from gitops_mail.daemon.livecheck import PeriodicCheck  # noqa: PLC0415
    from gitops_mail.daemon.metrics import Metrics  # noqa: PLC0415
    from gitops_mail.daemon.worker import Daemon  # noqa: PLC0415

    logs.configure()
    notifier = Notifier.from_environ(os.environ)
    metrics = Metrics() if settings.metrics_address else None
    exporter = (
        metrics.serve(settings.metrics_address) if metrics and settings.metrics_address else None
    )
    try:
        with hold_pid_file(settings.state_dir), wakeup_pipe() as signals:
            daemon = Daemon(settings, hooks=build_hooks(settings, metrics), notify=notifier.send)
            daemon.start()
            checker = PeriodicCheck(settings, daemon.status, metrics)
            checker.start()
            code = _main_loop(daemon, signals, notifier)
            notifier.send("STOPPING=1")
            checker.stop()
            daemon.stop()
    finally:
        if exporter is not None:
            exporter.stop()
    return code


def _main_loop(daemon: Daemon, signals: _Signals, notifier: Notifier) -> int:
    tick = notifier.watchdog_interval or IDLE_TICK_S
    while True:
        for signum in signals.wait(tick):
            if signum in STOP_SIGNALS:
                log.info("daemon.signal", signal=signal.Signals(signum).name)
                return 0
            daemon.request(signal.Signals(signum).name)
        if not daemon.alive():
            log.error("daemon.worker_died")
            return 1
        if notifier.watchdog_interval and not daemon.stuck():
            notifier.send("WATCHDOG=1")


# --- systemd ------------------------------------------------------------------------


@dataclass(frozen=True)
class Notifier:
    """sd_notify(3) by hand: one datagram per message to ``NOTIFY_SOCKET``."""

    address: str | None  # a path, or "\\0name" for the abstract namespace ("@name")
    watchdog_interval: float | None  # seconds between WATCHDOG=1, half of WatchdogSec

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str]) -> Notifier:
        """Read (and remove, so no child answers for us) systemd's variables."""
        path = environ.pop("NOTIFY_SOCKET", "") or None
        usec, pid = environ.pop("WATCHDOG_USEC", ""), environ.pop("WATCHDOG_PID", "")
        if path and path.startswith("@"):
            path = "\0" + path[1:]
        ours = not pid or pid == str(os.getpid())
        interval = int(usec) / 2_000_000 if usec.isdigit() and int(usec) > 0 and ours else None
        return cls(path, interval)

    def send(self, *fields: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            log.warning("daemon.notify_failed", socket=self.address, error=str(exc))


# --- signals --------------------------------------------------------------------------


class _Signals:
    def __init__(self, read_fd: int) -> None:
        self.read_fd = read_fd

    def wait(self, timeout: float) -> list[int]:
        """The signals that arrived, waiting up to ``timeout`` seconds for one."""
        ready, _, _ = select.select([self.read_fd], [], [], timeout)
        if not ready:
            return []
        with contextlib.suppress(BlockingIOError):
            return list(os.read(self.read_fd, 512))
        return []


def _ignore(signum: int, frame: FrameType | None) -> None:
    """The wakeup fd carries the signal; the Python-level handler has nothing to do."""


@contextlib.contextmanager
def wakeup_pipe() -> Iterator[_Signals]:
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    watched = (*STOP_SIGNALS, *PASS_SIGNALS)
    old_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    old = {signum: signal.signal(signum, _ignore) for signum in watched}
    try:
        yield _Signals(read_fd)
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(old_fd)
        os.close(read_fd)
        os.close(write_fd)


# --- reconcile-now ----------------------------------------------------------------------


def reconcile_now(settings: hostsettings.HostSettings, *, wait: bool, timeout: float) -> int:
    pid = daemon_pid(settings.state_dir)
    if pid is None:
        raise GitopsMailError(
            f"no gitops-mail daemon runs for {settings.state_dir}",
            "start it (systemctl start gitops-mail), or apply once with `gitops-mail apply`",
        )
    asked = time.time()
    try:
        os.kill(pid, signal.SIGUSR1)
    except OSError as exc:
        raise GitopsMailError(
            f"cannot signal the daemon (pid {pid}): {exc.strerror}",
            "run reconcile-now as the user the daemon runs as",
        ) from exc
    print(f"asked the daemon (pid {pid}) for a pass", flush=True)
    if not wait:
        return 0
    report = _wait_for_pass(settings.state_dir, asked, timeout)
    if report is None:
        print(
            f"gitops-mail: no result within {timeout:g} s; see gitops-mail status", file=sys.stderr
        )
        return 1
    revision = str(report.get("revision") or "?")[:7]
    text = pass_text(str(report.get("result")), revision, str(report.get("message")))
    print(shown_lines(text))
    return 0 if report.get("result") in GOOD_RESULTS else 1


def _wait_for_pass(state_dir: Path, asked: float, timeout: float) -> dict[str, Any] | None:
    """The first forced pass that started after ``asked``, once it has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = (read_status(state_dir) or {}).get("last_forced") or {}
        if float(last.get("started", 0)) >= asked:
            return dict(last)
        time.sleep(WAIT_POLL_S)
    return None
