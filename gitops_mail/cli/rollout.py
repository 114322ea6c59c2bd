"""``gitops-mail deploy --status HOST...``: each host's live revision against the conf repo's tip.

The hosts are asked in parallel over SSH (``host.remote.rollout``), with the
same targets, names and layout as ``deploy``; nothing is changed on them.
Exit 0 when the tip is live on every host, 1 when one lags or cannot be asked.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gitops_mail.core.deploy.layout import Layout
from gitops_mail.core.deploy.rollout import REACHED, lines
from gitops_mail.core.deploy.target import Target
from gitops_mail.git import plumbing as gitplumbing
from gitops_mail.host.remote.rollout import host_rollout


def run(args: argparse.Namespace, targets: list[Target], layouts: dict[str, Layout]) -> int:
    branch = Layout().branch
    tip = gitplumbing.resolve_revision(Path(args.conf), f"refs/heads/{branch}")
    with ThreadPoolExecutor(len(targets)) as pool:
        futures = [
            pool.submit(host_rollout, t, layouts[t.spec], tip, accept_new=args.accept_new_host_key)
            for t in targets
        ]
        found = [f.result() for f in futures]
    for line in lines(tip, branch, found):
        print(line)
    return 0 if all(h.state == REACHED for h in found) else 1
