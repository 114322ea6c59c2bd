"""After the swap: make chasquid pick the change up, prove it, or undo it.

The probe expectations come from what is on disk after the swap (hostname,
listen addresses, certificate fingerprints) and from the plan (every address
it touched must be accepted or refused as the new resolution says).

While the probes wait (chasquid not answering yet, or its periodic reload not
done), the daemon may have a newer revision to apply: ``newer`` names it, and
the wait ends there (``Failure.newer``). Only the wait: the restart before it
and a restore after it always run to their end.

A chasquid that exits after its restart will not answer: where the restart
waits for the new process and its state is knowable (``supervise``,
``systemd``), the probes stop waiting once it is seen not running
(``_Exited``) and fail with that, rather than at ``probe_deadline``. A
restore's probes wait at least ``RESTORE_PROBE_S``: the tree they prove is
the one that served before, and a short deadline, chosen to give up on a
bad revision soon, should not call a good restore failed.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gitops_mail.apply.transaction import Phases
from gitops_mail.core.formats.chasquid_conf import parse_config
from gitops_mail.core.plan.model import Action, Plan
from gitops_mail.core.state import State
from gitops_mail.errors import GitopsMailError
from gitops_mail.host.livefs import configdir as livefs
from gitops_mail.host.preflight import error_lines
from gitops_mail.host.probe.smtp import probe
from gitops_mail.host.probe.spec import (
    ProbeResult,
    ProbeSpec,
    endpoints_from_config,
    leaf_fingerprint,
)
from gitops_mail.host.service import LOG_FILE, Service, service_for
from gitops_mail.host.settings import HostSettings

RCPT_LIMIT = 20
WAIT_RELOAD_S = 35.0  # chasquid 1.11 re-reads users and aliases every 30 s
RELOAD_POLL_S = 0.25  # between probes while waiting for that reload
LOG_READ_LIMIT = 256 * 1024  # of chasquid's log written since the restart
NORMAL_STOP = "Got signal to exit"  # the old chasquid, stopped by the restart
PATIENCE_S = 1.0  # a probe this long unanswered is waiting, not watching chasquid start
ASK_EVERY_S = 0.1  # how often a waiting probe asks whether a newer revision is there
RESTORE_PROBE_S = 10.0  # the least a restore's probes wait (the default probe_deadline)
WATCHED_SERVICES = ("supervise", "systemd")  # restart returns once the new chasquid runs
EXITED = "chasquid is not running: it exited after its restart"

Newer = Callable[[], str | None]  # the revision that supersedes this one, if any


@dataclass(frozen=True)
class Failure:
    """Why a revision is not proven live."""

    text: str
    restart: bool = False  # the restart itself failed (a host matter), before any probe
    newer: str | None = None  # the wait was cancelled: this revision is to be applied next


@dataclass(frozen=True)
class Restored:
    ok: bool  # the old tree is back and the server passes its probes
    sentence: str  # how it went, for messages and history


def act_and_probe(
    settings: HostSettings,
    action: Action,
    state: State | None,
    plan: Plan | None,
    phases: Phases,
    *,
    label: str = "",
    newer: Newer | None = None,
    deadline: float | None = None,
) -> Failure | None:
    """Restart as needed and probe; None when proven, else why not.

    ``label`` prefixes the phase names ("restore-" for the second round);
    ``deadline`` is the probes' (default: ``probe_deadline``).
    With ``reload_strategy: wait`` a users/aliases change is probed again until
    chasquid's periodic reload shows it, or the wait is over. ``newer``, when
    given, may end the wait early (``Failure.newer``).
    """
    waiting = action is Action.RELOAD and settings.chasquid.reload_strategy == "wait"
    log = _own_log(settings)
    offset = _size(log)
    exited = _Exited(None)
    try:
        if action is not Action.NONE and not waiting:
            with phases.timed(f"{label}restart"):
                service = service_for(settings)
                service.restart()
            if settings.chasquid.service in WATCHED_SERVICES:
                exited = _Exited(service)
    except GitopsMailError as exc:  # the service, or how the host settings name it
        return Failure(exc.message, restart=True)
    patience = _Patience(newer)
    try:
        with phases.timed(f"{label}probe"):
            spec = spec_from_disk(settings.chasquid.config_dir, state, plan)
            if waiting:
                result = _probe_until_reloaded(spec, WAIT_RELOAD_S, patience)
            else:
                seconds = settings.probe_deadline if deadline is None else deadline
                result = probe(spec, deadline=seconds, cancelled=patience, gone=exited)
    except GitopsMailError as exc:
        return Failure(exc.message)
    if result.ok:
        return None
    failure = "probe failed: " + "; ".join(f"{c.name}: {c.detail}" for c in result.failures())
    said = _errors_logged(log, offset)
    text = f"chasquid logged: {said}; {failure}" if said else failure
    return Failure(text, newer=patience.found if result.cancelled else None)


class _Patience:
    """Whether a waiting probe should stop: ``newer()`` names a revision to apply instead.

    Not asked during the first ``PATIENCE_S`` (a restarted chasquid takes
    ~50 ms to listen: that is no wait worth cancelling), then at most every
    ``ASK_EVERY_S``; the probe's endpoint threads share one answer.
    """

    def __init__(self, newer: Newer | None) -> None:
        self.newer = newer
        self.found: str | None = None
        self._next = time.monotonic() + PATIENCE_S
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if self.found is None and self.newer is not None and now >= self._next:
                self._next = now + ASK_EVERY_S
                self.found = self.newer()
            return self.found is not None


class _Exited:
    """Why the probes need not wait: the restarted chasquid is not running any more.

    Asked by the probe's endpoint threads between attempts; they share one
    answer, and ``service.is_running`` (a ``systemctl`` for systemd) is asked at
    most every ``ASK_EVERY_S``. With no service to watch it never says so.
    """

    def __init__(self, service: Service | None) -> None:
        self.service = service
        self.why = ""
        self._next = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            now = time.monotonic()
            if self.service is not None and not self.why and now >= self._next:
                self._next = now + ASK_EVERY_S
                with contextlib.suppress(GitopsMailError):  # unknown: keep waiting
                    self.why = "" if self.service.is_running() else EXITED
            return self.why


def _own_log(settings: HostSettings) -> Path | None:
    """chasquid's log where gitops-mail keeps it (supervise mode): its words on a failure."""
    return settings.state_dir / LOG_FILE if settings.chasquid.service == "supervise" else None


def _size(log: Path | None) -> int:
    try:
        return log.stat().st_size if log is not None else 0
    except OSError:
        return 0


def _errors_logged(log: Path | None, offset: int) -> str:
    """chasquid's error and fatal lines written to ``log`` since ``offset``, each once."""
    if log is None:
        return ""
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            text = handle.read(LOG_READ_LIMIT).decode("utf-8", "replace")
    except OSError:
        return ""
    errors = (line for line in error_lines(text) if not line.startswith(NORMAL_STOP))
    return "; ".join(dict.fromkeys(errors))


def _probe_until_reloaded(spec: ProbeSpec, seconds: float, patience: _Patience) -> ProbeResult:
    """Probe until every answer is the new one; a wrong answer may be the old config still."""
    end = time.monotonic() + seconds
    while True:
        result = probe(
            spec, deadline=max(end - time.monotonic(), RELOAD_POLL_S), cancelled=patience
        )
        if result.ok or result.cancelled or time.monotonic() + RELOAD_POLL_S >= end:
            return result
        if patience():
            return ProbeResult(False, result.checks, result.duration_ms, cancelled=True)
        time.sleep(RELOAD_POLL_S)


def restore(
    settings: HostSettings, live: livefs.LiveDir, checkpoint: livefs.Checkpoint, phases: Phases
) -> Restored:
    """Put the old tree back, restart, probe; say how it went."""
    with phases.timed("restore"):
        live.restore(checkpoint)
    failure = act_and_probe(
        settings,
        Action.RESTART,
        None,
        None,
        phases,
        label="restore-",
        deadline=max(settings.probe_deadline, RESTORE_PROBE_S),
    )
    if failure is None:
        return Restored(
            True, "the server was restored to its previous configuration and passes its probes"
        )
    return Restored(
        False,
        f"the previous configuration was restored, but the server still fails: {failure.text}",
    )


def spec_from_disk(config_dir: Path, state: State | None, plan: Plan | None) -> ProbeSpec:
    conf_path = config_dir / "chasquid.conf"
    try:
        data = conf_path.read_bytes()
    except OSError as exc:  # a restore to a host that had no configuration yet
        raise GitopsMailError(
            f"cannot probe: {conf_path} cannot be read ({exc.strerror})",
            "chasquid has no configuration to serve",
        ) from exc
    config, problems = parse_config(data, str(conf_path))
    if config is None or config.hostname is None:
        raise GitopsMailError(
            f"cannot probe: {conf_path} does not name a hostname",
            "; ".join(p.message for p in problems),
        )
    smtp, submission, tls = endpoints_from_config(
        config.smtp_address, config.submission_address, config.submission_over_tls_address
    )
    return ProbeSpec(
        hostname=config.hostname,
        smtp=smtp,
        submission=submission,
        submission_tls=tls,
        fingerprints=_fingerprints(config_dir),
        rcpt=_rcpt_checks(state, plan) if state is not None and plan is not None else (),
    )


def _fingerprints(config_dir: Path) -> frozenset[str]:
    chains = sorted((config_dir / "certs").glob("*/fullchain.pem"))
    return frozenset(leaf_fingerprint(p.read_bytes()) for p in chains)


def _rcpt_checks(state: State, plan: Plan) -> tuple[tuple[str, bool], ...]:
    checks: dict[str, bool] = {}
    for change in plan.changes:
        if change.area not in ("user", "alias", "catch-all"):
            continue
        address = change.subject
        if address.startswith("*@"):
            address = f"gitops-mail-probe-{secrets.token_hex(4)}{address[1:]}"
        checks[address] = state.resolver.resolve(address).exists
        if len(checks) >= RCPT_LIMIT:
            break
    return tuple(checks.items())
