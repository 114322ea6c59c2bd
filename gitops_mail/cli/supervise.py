"""``gitops-mail supervise``: run chasquid as a child, restarting it whenever it ends.

For hosts where chasquid is not a systemd service (``chasquid.service:
supervise`` in the host settings): containers, the demo, the tests. Runs in
the foreground until SIGTERM or SIGINT, then stops chasquid and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from gitops_mail.errors import UsageError
from gitops_mail.host import settings as hostsettings
from gitops_mail.host.supervisor import Supervisor


def run(args: argparse.Namespace) -> int:
    settings = hostsettings.load(getattr(args, "config", None))
    mode = settings.chasquid.service
    if mode != "supervise":
        raise UsageError(
            f"{settings.path}: chasquid.service is {mode!r}, so chasquid is not ours to run",
            "set chasquid.service to 'supervise' in the host settings to run chasquid "
            "as a child of `gitops-mail supervise`",
        )
    _log_to_stderr()
    return Supervisor(settings).run_forever(threading.Event())


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("gitops-mail supervise: %(message)s"))
    logger = logging.getLogger("gitops_mail")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
