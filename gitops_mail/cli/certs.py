"""``gitops-mail certs sync``: install renewed certificates now, on the live revision.

For acme.sh's ``--reloadcmd`` and certbot's deploy hook, where no daemon
watches the certificate files (or to not wait for it). It does the daemon's
renewal work itself, under the state lock like ``apply`` (waiting for a
running apply or daemon pass): the live revision is applied again with the
certificates on disk, whatever the branch tip's state. A daemon that saw
the same files change finds them live and does nothing more.

Exit codes: 0 the certificates on disk are served (renewed now, or already);
1 a certificate was refused (the live one is still served; the message says
why) or the apply failed (the previous state restored), or no revision is
live yet.
"""

from __future__ import annotations

import argparse
import sys

from gitops_mail.core.printable import shown, shown_lines
from gitops_mail.host import settings as hostsettings


def _waiting() -> None:
    print("gitops-mail: another apply is running; waiting for it", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from gitops_mail.apply import certificates, renewal  # noqa: PLC0415 - only now

    settings = hostsettings.load(args.config)
    outcome = renewal.renew(settings, wait=not args.no_wait, on_wait=_waiting)
    if outcome is None:  # nothing changed since the last apply: what did it decide?
        refused = certificates.refusals(settings.state_dir)
        for entry in refused.values():
            print(shown(f"warning: {entry.get('reason')}; the live certificate is still served"))
        if not refused:
            print("the live revision already serves the certificates on disk")
        return 1 if refused else 0
    for change in outcome.plan.changes:  # the renewal named as plan, apply and history name it
        if change.area == "certificate" and change.op == "renewed":
            print(f"certificate {change.subject} renewed: {change.detail}")
    print(shown_lines(outcome.message))
    return 1 if any(note.refused for note in outcome.certificates) else 0
