"""A certificate renewal: the live revision applied again with the certificates on disk now.

A renewal is a host event, not a revision: it is applied on top of the
revision that is live, whatever the branch tip's state (broken, invalid,
failed, not yet applied); the tip keeps its own record. The daemon runs it
when a source file changes, ``gitops-mail certs sync`` on demand.
"""

from __future__ import annotations

from collections.abc import Callable

from gitops_mail.apply import stilllive
from gitops_mail.apply.reconcile import reconcile
from gitops_mail.apply.store import StateStore
from gitops_mail.apply.transaction import Outcome, PhaseReport
from gitops_mail.host.settings import HostSettings


def renew(
    settings: HostSettings,
    *,
    wait: bool = True,
    on_wait: Callable[[], None] | None = None,
    on_phase: PhaseReport | None = None,
) -> Outcome | None:
    """Apply the live revision with the certificates on disk; None when nothing changed
    since it was proven (recorded ``unchanged``). Raises what ``reconcile`` raises,
    and ``GitopsMailError`` when no revision is live yet."""
    applied = StateStore(settings.state_dir).load().applied
    if applied is not None and stilllive.reapply_if_live(
        settings, applied, wait=wait, on_wait=on_wait
    ):
        return None
    return reconcile(settings, wait=wait, on_wait=on_wait, on_phase=on_phase, live_revision=True)
