"""The live check of this host (``gitops-mail check``) and the daemon's periodic run of it.

``host_check`` checks the revision live on this host (the branch tip while
nothing is applied yet) against live DNS and the certificates chasquid
serves on the listen addresses of the live chasquid.conf. ``PeriodicCheck``
runs it every ``check_interval`` in its own thread, the first time
``FIRST_CHECK_S`` (5 minutes) after the start (or sooner with a shorter interval), and
reports only changes: a ``check.changed`` log event, the ``check`` entry of
``daemon.json`` (``gitops-mail status``) and the metrics.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gitops_mail import logs
from gitops_mail.apply.certificates import refusals
from gitops_mail.apply.liveproof import spec_from_disk
from gitops_mail.apply.store import StateStore
from gitops_mail.core.dns import findings as fnd
from gitops_mail.core.state import load_state
from gitops_mail.errors import GitopsMailError
from gitops_mail.git import plumbing as gitplumbing
from gitops_mail.git import read as gitread
from gitops_mail.host import settings as hostsettings
from gitops_mail.host.probe.spec import ProbeSpec
from gitops_mail.host.settings import HostSettings

if TYPE_CHECKING:
    from gitops_mail.daemon.metrics import Metrics
    from gitops_mail.daemon.status import StatusFile

FIRST_CHECK_S = 300.0  # after the start: the start-up pass and a restart's first minutes go first
STOP_WAIT_S = 2.0  # a run still asking DNS at shutdown is left to end with the process
log = logs.get_logger("gitops_mail.daemon")


@dataclass(frozen=True)
class Checked:
    revision: str
    live: bool  # the revision is the one applied here (else: the tip, nothing applied yet)
    findings: list[fnd.Finding]


def host_check(settings: HostSettings, resolver: str | None = None) -> Checked:
    from gitops_mail.host import livecheck  # noqa: PLC0415 - dnspython, only when a check runs

    applied = StateStore(settings.state_dir).load().applied
    revision = applied or gitplumbing.resolve_revision(settings.repo, settings.branch)
    state = hostsettings.view(settings, load_state(gitread.read_revision(settings.repo, revision)))
    spec, unreadable = _spec(settings)
    desired = livecheck.desired_from(state, settings.state_dir)  # the key store's DKIM keys
    found = livecheck.run(desired, resolver=resolver, spec=spec)
    return Checked(revision, applied is not None, found + unreadable + _refused(settings))


def _refused(settings: HostSettings) -> list[fnd.Finding]:
    """A renewal refused (``apply.certificates``): the live certificate is still served."""
    return [
        fnd.Finding(
            "tls",
            name,
            fnd.ERROR,
            f"{entry.get('reason')}; the live certificate is still served",
            hint=str(entry.get("hint", "")),
        )
        for name, entry in sorted(refusals(settings.state_dir).items())
    ]


def _spec(settings: HostSettings) -> tuple[ProbeSpec | None, list[fnd.Finding]]:
    """Where chasquid listens and its certificates on disk, from the live config dir."""
    try:
        return spec_from_disk(settings.chasquid.config_dir, None, None), []
    except (GitopsMailError, OSError) as exc:
        message = f"not checked: {getattr(exc, 'message', None) or exc}"
        return None, [fnd.Finding("tls", "chasquid.conf", fnd.ERROR, message)]


class PeriodicCheck:
    """``host_check`` every ``settings.check_interval`` seconds until ``stop``."""

    def __init__(
        self, settings: HostSettings, status: StatusFile, metrics: Metrics | None = None
    ) -> None:
        self.settings, self.status, self.metrics = settings, status, metrics
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="live-check", daemon=True)
        self._last: set[tuple[str, str, str, str]] | None = None

    def start(self) -> None:
        if self.settings.check_interval > 0:
            self._thread.start()

    def stop(self) -> None:
        """No new run; a run under way only reads, so the daemon does not wait long for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=STOP_WAIT_S)

    def _loop(self) -> None:
        delay = min(FIRST_CHECK_S, self.settings.check_interval)
        while not self._stop.wait(delay):
            self.once()
            delay = self.settings.check_interval

    def once(self) -> list[fnd.Finding]:
        started = time.monotonic()
        try:
            found = host_check(self.settings).findings
        except Exception as exc:  # the check must not stop the daemon: report it as a finding
            text = exc.message if isinstance(exc, GitopsMailError) else f"{type(exc).__name__}"
            found = [fnd.Finding("check", "(this host)", fnd.ERROR, f"the check failed: {text}")]
        self._report(found, time.monotonic() - started)
        return found

    def _report(self, found: list[fnd.Finding], seconds: float) -> None:
        problems = fnd.problems(found)
        keys = {f.key for f in problems}
        if self.metrics is not None:
            self.metrics.observe_check(found, seconds)
        if keys == self._last:
            return
        before, self._last = self._last or set(), keys
        counts = fnd.counts(found)
        level = "error" if counts[fnd.ERROR] else "warning" if counts[fnd.WARNING] else "info"
        getattr(log, level)(
            "check.changed",
            errors=counts[fnd.ERROR],
            warnings=counts[fnd.WARNING],
            new=[fnd.line(f) for f in problems if f.key not in before],
            fixed=sorted(" ".join(k[:2]) + f": {k[3]}" for k in before - keys),
        )
        self.status.update(
            check={
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "errors": counts[fnd.ERROR],
                "warnings": counts[fnd.WARNING],
                "ok": counts[fnd.OK],
                "problems": [fnd.line(f) for f in problems],
            }
        )
