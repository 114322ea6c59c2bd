"""The daemon: triggers feed one queue, one worker reconciles the branch tip.

A loop around ``reconcile`` (the same transaction as ``gitops-mail apply``),
never a second apply path. Each pass reads the tip when it starts, so a burst
of pushes ends in one reconcile of the newest tip; the commits in between are
recorded as ``superseded``. A newer tip pushed while a reconcile's probes
wait for chasquid ends that wait: the old state is restored, the waiting
revision recorded ``superseded`` (never proven) and the newer tip applied in
the next pass. A revision whose attempt failed or was invalid is not tried
again by itself (a new commit or ``reconcile-now`` is); any other error (the
state lock held by an apply, git or the state dir failing, chasquid that
neither restarts nor comes back restored: ``HostFault``) is transient and
retried with exponential back-off. At start the tip is reconciled unless it
is live and intact, so the daemon resumes after a crash or reboot.

A changed certificate source file is a renewal, applied on the live revision
whatever the tip's state (``daemon.renewals``).

What it is doing goes to ``state_dir/daemon.json`` (``daemon.status``); reading
the tip and recording superseded commits live in ``daemon.tips``; process
matters (signals, systemd, the pid file) in ``cli/daemon.py``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from gitops_mail import logs
from gitops_mail.apply import stilllive
from gitops_mail.apply.reconcile import reconcile
from gitops_mail.apply.store import Record, StateStore, Unproven
from gitops_mail.apply.transaction import ApplyFailed, Outcome, Superseded
from gitops_mail.daemon import renewals, triggers
from gitops_mail.daemon.status import PassReport, StatusFile, now_iso, status_line
from gitops_mail.daemon.tips import Tips, own_commit_on_live, record_superseded
from gitops_mail.daemon.triggers import Backoff, Job, Poller, Watchers, WorkQueue
from gitops_mail.errors import GitopsMailError, InvalidConfig
from gitops_mail.host.certs.source import CertificateError
from gitops_mail.host.livefs import configdir as livefs
from gitops_mail.host.settings import HostSettings

STUCK_AFTER_S = 600.0  # a pass running longer than this stops the systemd watchdog pings
PERMANENT = (InvalidConfig, ApplyFailed, CertificateError)  # recorded by reconcile; final
GIVEN_UP = ("failed", "invalid")  # results not tried again by themselves

log = logs.get_logger("gitops_mail.daemon")


@dataclass(frozen=True)
class Hooks:
    """Optional calls out of the worker; an exception in one is logged, never fatal."""

    # reconcile made (or kept) it live; a line returned goes to the status file (commit-back)
    on_applied: Callable[[Outcome], str | None] | None = None
    on_pass: Callable[[PassReport], None] | None = None  # after every pass


class Daemon:
    """The worker thread and the triggers that feed it, for one host's settings."""

    def __init__(
        self,
        settings: HostSettings,
        *,
        hooks: Hooks | None = None,
        notify: Callable[..., None] = lambda *fields: None,
        rng: random.Random | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.settings, self.hooks, self.notify = settings, hooks or Hooks(), notify
        self.rng, self.backoff = rng or random.Random(), backoff or Backoff()  # noqa: S311
        self.store = StateStore(settings.state_dir)
        self.queue = WorkQueue()
        self.watchers = Watchers(self.queue)
        self.polling = settings.remote is not None
        self.poller = Poller(self.queue, settings.poll_interval, fetch=self.polling, rng=self.rng)
        self.status = StatusFile.of(settings)
        self.tips = Tips(settings, self.queue)
        self._worker = threading.Thread(target=self._work, name="worker", daemon=True)
        self._last_target: str | None = None  # the tip the previous pass dealt with
        self._retrying: str | None = None  # the tip a transient error is retried for
        self._failures = self._passes = 0
        self._busy_since: float | None = None
        self._tip_seen: str | None = None

    def start(self) -> None:
        where = triggers.git_dir(self.settings.repo)
        self.watchers.start()  # first: a watch added to a running observer fails right here
        try:
            self.watchers.watch_refs(where, self.settings.branch)
        except OSError as exc:
            self.watchers.stop()
            raise GitopsMailError(
                f"cannot watch {where / 'refs'}: {exc.strerror}",
                f"check repo: in {self.settings.path}; it must be a git repository",
            ) from exc
        self._watch_certs()
        self.poller.start()
        self.status.update(state="starting")
        self.queue.poke("start", fetch=self.polling)
        self._worker.start()
        log.info(
            "daemon.start",
            repo=str(self.settings.repo),
            branch=self.settings.branch,
            remote=self.settings.remote,
        )

    def request(self, reason: str = "signal") -> None:
        """A forced pass (SIGUSR1, ``reconcile-now``): reconcile even a live or failed tip."""
        self.queue.poke(reason, force=True, fetch=self.polling)

    def stop(self) -> None:
        """Stop the triggers and let the current pass finish: reconcile is atomic."""
        log.info("daemon.stopping", busy=self._busy_since is not None)
        self.status.update(state="stopping")
        self.watchers.stop()
        self.poller.stop()
        self.queue.close()
        self._worker.join()
        self.status.update(state="stopped", pending=False, next_poll=None)
        log.info("daemon.stop")

    def alive(self) -> bool:
        """The worker runs (it ends only once the queue is closed, or by a bug)."""
        return self._worker.is_alive()

    def stuck(self) -> bool:
        """A pass has been running for longer than any pass should."""
        busy = self._busy_since
        return busy is not None and time.monotonic() - busy > STUCK_AFTER_S

    # --- the worker ---

    def _work(self) -> None:
        while (job := self.queue.take()) is not None:
            self._busy_since = time.monotonic()
            try:
                report = self._pass(job)
            finally:
                self._busy_since = None
            self._after(report)

    def _pass(self, job: Job) -> PassReport:
        started, clock = time.time(), time.monotonic()
        self.status.update(state="reconciling", pending=False, reasons=list(job.reasons))
        revision: str | None = None
        tip: str | None = None
        try:
            revision = tip = self._tip(job)
            live = self._renewal_of(tip, job)
            if live is not None:
                revision = live
                result, message = self._renew(live, tip, job)
            else:
                result, message = self._handle(tip, job)
        except Superseded as exc:  # recorded by reconcile; the queue holds the newer tip
            self._settled(tip)
            result, message = "superseded", exc.message
            log.info("reconcile.superseded", revision=revision, by=exc.newer, reason=exc.message)
        except PERMANENT as exc:  # reconcile recorded it in history
            self._settled(tip)
            result, message = _result_of(self.store, revision), exc.message
            log.error("reconcile.refused", revision=revision, result=result, reason=exc.message)
        except Exception as exc:  # the worker must go on: a transient error, retried later
            result, message = "error", _message(exc)
            self._retry(job, tip, exc)
        ms = round((time.monotonic() - clock) * 1000, 1)
        return PassReport(revision, result, message, job.force, started, ms)

    def _tip(self, job: Job) -> str:
        self._tip_seen = self.tips.read(fetch=job.fetch)
        return self._tip_seen

    def _handle(self, tip: str, job: Job) -> tuple[str, str]:
        record = self.store.load()
        why_not = self._skip_reason(tip, record, job)
        if why_not is not None:
            self._settled(tip)
            log.debug("pass.skip", revision=tip, why=why_not, reasons=list(job.reasons))
            return "skipped", why_not
        if not job.force and own_commit_on_live(self.settings, self.store, tip):
            self._settled(tip)  # its own commit-back: live already, no history entry
            return "unchanged", f"{tip[:7]} is the daemon's own commit on the live revision"
        record_superseded(self.settings, self.store, self._last_target or record.applied, tip)
        log.info("reconcile.start", revision=tip, forced=job.force, reasons=list(job.reasons))
        outcome = self._reconcile(tip, job)
        self._settled(tip)
        if outcome is None:
            message = f"{tip[:7]} is already live; nothing to do"
            log.info("reconcile.end", revision=tip, result="unchanged", message=message)
            return "unchanged", message
        log.info(
            "reconcile.end",
            revision=tip,
            result=outcome.result,
            message=outcome.message,
            action=outcome.action.label,
            phases_ms=outcome.phases,
        )
        said = self._call(self.hooks.on_applied, outcome)  # commit-back plugs in here
        if isinstance(said, str):
            self.status.update(commit_back=said)
        self._watch_certs()
        return outcome.result, outcome.message

    def _renewal_of(self, tip: str, job: Job) -> str | None:
        return renewals.target(self.store.load(), tip, job, GIVEN_UP)

    def _renew(self, live: str, tip: str, job: Job) -> tuple[str, str]:
        """Apply the live revision with the certificates on disk; the tip is left alone."""
        result, message, changed = renewals.run(
            self.settings, live, tip, job, self._phase_log(live)
        )
        self._settled(tip)
        if changed:
            self._watch_certs()
        return result, message

    def _phase_log(self, revision: str) -> Callable[[str, float, str], None]:
        return lambda name, ms, result: log.info(
            "phase", revision=revision, phase=name, duration_ms=ms, result=result
        )

    def _reconcile(self, tip: str, job: Job) -> Outcome | None:
        """The transaction; None when a forced pass found ``tip`` live exactly as proven."""
        if job.force and stilllive.reapply_if_live(self.settings, tip, wait=False):
            return None
        return reconcile(
            self.settings,
            tip,
            wait=False,
            newer=lambda: self.tips.newer(tip),
            on_phase=self._phase_log(tip),
        )

    def _skip_reason(self, tip: str, record: Record, job: Job) -> str | None:
        if job.force or tip == self._retrying:
            return None
        if tip == record.applied and self._intact(tip, job):
            return f"{tip[:7]} is live"
        last = record.failed(tip)
        if last is not None and last.result in GIVEN_UP:
            return (
                f"{tip[:7]} was {last.result} ({last.reason}); not tried again until a new "
                "commit or `gitops-mail reconcile-now`"
            )
        return None

    def _intact(self, tip: str, job: Job) -> bool:
        """No apply died half way; at start also no drift, no renewal missed while down."""
        live = livefs.LiveDir(self.settings.chasquid.config_dir, self.settings.state_dir)
        if "start" in job.reasons:
            return stilllive.still_live(self.store, live, tip)
        return not (Unproven.of(live.state_dir).present() or live.journal_path.exists())

    def _settled(self, tip: str | None) -> None:
        if self._failures:
            self.status.update(backoff_s=None, next_retry=None, last_error=None)
        self._last_target, self._retrying, self._failures = tip, None, 0

    def _retry(self, job: Job, tip: str | None, exc: Exception) -> None:
        self._failures += 1
        self._retrying = tip
        delay = self.backoff.delay(self._failures, self.rng)
        self.queue.retry(job, delay)
        log.warning(
            "pass.retry",
            revision=tip,
            error=_message(exc),
            failures=self._failures,
            delay_s=round(delay, 2),
            exc_info=not isinstance(exc, GitopsMailError),
        )
        self.status.update(
            backoff_s=round(delay, 2),
            next_retry=now_iso(time.time() + delay),
            last_error=_message(exc),
        )

    def _after(self, report: PassReport) -> None:
        self._passes += 1
        self._call(self.hooks.on_pass, report)  # metrics plug in here
        try:
            applied = self.store.load().applied
        except GitopsMailError:
            applied = None  # state.json unreadable: the next pass reports why
        forced = {"last_forced": asdict(report)} if report.forced else {}
        next_at = self.poller.next_at if self.polling else None
        next_poll = now_iso(next_at) if next_at else None
        self.status.update(
            state="idle",
            pending=self.queue.pending,
            passes=self._passes,
            tip=self._tip_seen,
            live=applied,
            last_pass=asdict(report),
            next_poll=next_poll,
            **forced,
        )
        line = status_line(report.revision, report.result, report.message, applied)
        self.notify(*(["READY=1"] if self._passes == 1 else []), f"STATUS={line}")

    def _call(self, hook: Callable[[Any], object] | None, value: object) -> object:
        if hook is None:
            return None
        try:
            return hook(value)
        except Exception:  # a hook must not stop the daemon
            log.exception("daemon.hook_failed", hook=getattr(hook, "__name__", repr(hook)))
            return None

    def _watch_certs(self) -> None:
        """Watch the certificate source files the live revision was proven with."""
        for directory in self.watchers.watch_certs(
            triggers.proven_sources(self.settings.state_dir)
        ):
            log.warning("certs.unwatched", directory=str(directory))


def _result_of(store: StateStore, revision: str | None) -> str:
    """What reconcile recorded for ``revision``: invalid or failed."""
    try:
        last = store.load().failed(revision) if revision else None
    except GitopsMailError:
        last = None
    return last.result if last is not None else "failed"


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, GitopsMailError) else f"{type(exc).__name__}: {exc}"
