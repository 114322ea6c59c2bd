"""``gitops-mail apply [--rev R] [--dry-run] [--no-wait]``: one transaction on this host."""

from __future__ import annotations

import argparse
import sys

from gitops_mail.apply import stilllive
from gitops_mail.host import settings as hostsettings


def _waiting() -> None:
    print("gitops-mail: another apply is running; waiting for it", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    settings = hostsettings.load(args.config)
    wait = not args.no_wait
    if not args.dry_run:
        live = stilllive.reapply_if_live(settings, args.rev, wait=wait, on_wait=_waiting)
        if live is not None:
            print(f"{live[:7]} is already live; nothing to do")
            return 0
    from gitops_mail.apply.reconcile import reconcile  # noqa: PLC0415
    from gitops_mail.core import report  # noqa: PLC0415 - the full transaction's imports, only now

    outcome = reconcile(settings, args.rev, dry_run=args.dry_run, wait=wait, on_wait=_waiting)
    if outcome.changes:
        print(report.plan_text(outcome.plan), end="")
    print(outcome.message)
    return 0
