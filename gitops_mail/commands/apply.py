"""``gitops-mail apply [--rev R] [--dry-run] [--no-wait]``: one transaction on this host."""

from __future__ import annotations

import argparse
import sys

from gitops_mail import hostconfig, report
from gitops_mail.reconcile import reconcile


def run(args: argparse.Namespace) -> int:
    settings = hostconfig.load(args.config)
    outcome = reconcile(
        settings,
        args.rev,
        dry_run=args.dry_run,
        wait=not args.no_wait,
        on_wait=lambda: print(
            "gitops-mail: another apply is running; waiting for it", file=sys.stderr, flush=True
        ),
    )
    if outcome.changes:
        print(report.plan_text(outcome.plan), end="")
    print(outcome.message)
    return 0
