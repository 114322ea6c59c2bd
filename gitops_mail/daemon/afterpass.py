"""What the daemon does around each pass: commit back generated files, count
results for Prometheus. Kept out of ``daemon`` so the loop stays a loop."""

from __future__ import annotations

from gitops_mail.apply.certificates import refusals
from gitops_mail.apply.transaction import Outcome
from gitops_mail.core.state import load_state
from gitops_mail.daemon.commitback import commit_back
from gitops_mail.daemon.metrics import RESULTS, Metrics
from gitops_mail.daemon.status import PassReport
from gitops_mail.daemon.worker import Hooks
from gitops_mail.git import read as gitread
from gitops_mail.host.certs import installed
from gitops_mail.host.settings import HostSettings
from gitops_mail.logs import get_logger

log = get_logger("gitops_mail.daemon")


def build_hooks(settings: HostSettings, metrics: Metrics | None) -> Hooks:
    def on_applied(outcome: Outcome) -> str:
        state = load_state(
            gitread.read_revision(settings.repo, outcome.revision, limits=settings.limits)
        )
        done = commit_back(settings, state, outcome.revision)
        log.info(
            "commitback",
            revision=outcome.revision[:7],
            result=done.result,
            commit=done.commit[:7] if done.commit else None,
            reason=done.reason,
        )
        if metrics is not None:
            metrics.observe_commit_back(done.result)
        return f"{outcome.revision[:7]} {done.result}: {done.reason}"

    def on_pass(report: PassReport) -> None:
        if metrics is not None and report.result in RESULTS:
            metrics.observe(report.result, report.duration_ms / 1000, report.revision)
        if metrics is not None:  # a renewal or an apply may have installed another one
            metrics.set_refused(refusals(settings.state_dir))
            metrics.observe_certificates(installed.every_leaf(settings.chasquid.config_dir))

    return Hooks(on_applied=on_applied if settings.commit_back else None, on_pass=on_pass)
