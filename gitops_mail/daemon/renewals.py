"""The daemon's certificate renewals: which passes are renewals, and running one.

A changed certificate source file is a renewal (``apply.renewal``): when the
tip is live, or failed and given up, the pass applies the LIVE revision again
with the new certificates and the tip keeps its own record (it is not
retried); a tip not yet tried is applied instead, with the new certificates.
At start, a renewal missed while the daemon was down is applied the same way
when the tip was given up (a live tip is looked at whole by the start pass).
"""

from __future__ import annotations

from gitops_mail import logs
from gitops_mail.apply import renewal
from gitops_mail.apply.store import Record
from gitops_mail.apply.transaction import PhaseReport
from gitops_mail.daemon.triggers import Job
from gitops_mail.host.settings import HostSettings

log = logs.get_logger("gitops_mail.daemon")


def target(record: Record, tip: str, job: Job, given_up: tuple[str, ...]) -> str | None:
    """The live revision, when this pass renews its certificates; else None."""
    renewing, starting = "certificate" in job.reasons, "start" in job.reasons
    if not (renewing or starting) or record.applied is None:
        return None
    if tip == record.applied:  # at start, the worker looks at everything (``still_live``)
        return record.applied if renewing else None
    last = record.failed(tip)
    if last is None or last.result not in given_up or job.force:
        return None
    return record.applied


def run(
    settings: HostSettings, live: str, tip: str, job: Job, on_phase: PhaseReport
) -> tuple[str, str, bool]:
    """Apply ``live`` with the certificates on disk: (result, message, whether it changed
    anything). Raises what ``reconcile`` raises."""
    log.info("renewal.start", revision=live, tip=tip, reasons=list(job.reasons))
    outcome = renewal.renew(settings, wait=False, on_phase=on_phase)
    if outcome is None:
        message = f"{live[:7]} is live with the certificates on disk; nothing to do"
        log.info("renewal.end", revision=live, result="unchanged", message=message)
        return "unchanged", message, False
    log.info(
        "renewal.end",
        revision=outcome.revision,
        result=outcome.result,
        message=outcome.message,
        action=outcome.action.label,
        phases_ms=outcome.phases,
    )
    return outcome.result, outcome.message, True
