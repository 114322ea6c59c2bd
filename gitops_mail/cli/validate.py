"""``gitops-mail validate``: every problem of a revision at once.

With host settings (``--config`` or ``GITOPS_MAIL_CONFIG`` naming a file that
exists) the revision is judged against that host's policy, as the pre-receive
hook and the daemon judge it: what the policy refuses is an error. Without,
no host is known (a checkout, CI): what a host's policy must allow is told as
notes, which fail nothing, not even ``--strict``.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from gitops_mail.cli.source import collector_paused, load_source
from gitops_mail.core import report
from gitops_mail.core.checks.validate import validate
from gitops_mail.core.problems import Severity, has_errors

if TYPE_CHECKING:
    from gitops_mail.core.policy import HostPolicy


def run(args: argparse.Namespace) -> int:
    policy = host_policy(getattr(args, "config", None))
    with collector_paused():
        state = load_source(args)
        found = validate(state, policy=policy)
    source = state.snapshot.source
    if args.format == "json":
        print(report.problems_json(found, source, state.snapshot.revision), end="")
    else:
        print(report.problems_text(found, source), end="")
    warned = any(p.severity is Severity.WARNING for p in found)
    failed = has_errors(found) or (args.strict and warned)
    return 1 if failed else 0


def host_policy(explicit: str | None) -> HostPolicy | None:
    """The policy of the host settings named by ``--config`` (which must load) or by
    ``GITOPS_MAIL_CONFIG`` (unless no such file exists); None when neither names one."""
    from gitops_mail.host import settings as hostsettings  # noqa: PLC0415 - only with a host

    if explicit is None:
        named = os.environ.get(hostsettings.ENV_VAR)
        if not named or not os.path.lexists(named):
            return None
        explicit = named
    return hostsettings.load(explicit).policy
