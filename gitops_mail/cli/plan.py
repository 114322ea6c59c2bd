"""``gitops-mail plan``: what applying a revision would change.

Exit codes follow terraform's ``-detailed-exitcode``: 0 no change, 2 changes,
1 error (including a new revision that does not validate).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gitops_mail.cli.source import collector_paused, load_source
from gitops_mail.cli.validate import host_policy
from gitops_mail.core import report
from gitops_mail.core.checks.validate import validate
from gitops_mail.core.plan.make import make_plan
from gitops_mail.core.snapshot import CHASQUID_DIR, Snapshot
from gitops_mail.core.state import State, load_state
from gitops_mail.errors import InvalidConfig, RepoError
from gitops_mail.git import read as gitread


def run(args: argparse.Namespace) -> int:
    with collector_paused():
        new = load_source(args)
        base = _base_state(args, new)
        policy = host_policy(getattr(args, "config", None))  # as validate judges
        plan = make_plan(base, new, tuple(validate(new, policy=policy)))
    render = {"json": report.plan_json, "markdown": report.plan_markdown}.get(
        args.format, report.plan_text
    )
    print(render(plan), end="")
    if plan.has_errors:
        return 1
    return 2 if plan.changes else 0


def _base_state(args: argparse.Namespace, new: State) -> State | None:
    if args.live:
        return load_state(_live_snapshot(args, new.snapshot))
    repo = Path(args.repo)
    if args.base:
        return load_state(gitread.read_revision(repo, args.base))
    if args.worktree:
        try:
            return load_state(gitread.read_revision(repo, "HEAD"))
        except RepoError:
            return None  # not a repo, or no commit yet: everything is new
    parent = gitread.parent_revision(repo, new.snapshot.revision or args.rev)
    return load_state(gitread.read_revision(repo, parent)) if parent else None


def _live_snapshot(args: argparse.Namespace, new: Snapshot) -> Snapshot:
    """The live config dir as if it were a revision: the chasquid tree from the
    disk, every other file (the manifest included) from the new revision, since
    the server has no counterpart for them."""
    from gitops_mail.host import localfs  # noqa: PLC0415 - only --live needs them
    from gitops_mail.host import settings as hostsettings  # noqa: PLC0415

    settings = hostsettings.load(getattr(args, "config", None))
    config_dir = settings.chasquid.config_dir
    if not config_dir.is_dir():
        raise InvalidConfig(
            f"chasquid's config dir {config_dir} is not a directory "
            f"(chasquid.config_dir in {settings.path})",
            "fix chasquid.config_dir in the host settings, or install chasquid first",
        )
    live = localfs.read_directory(config_dir, prefix=CHASQUID_DIR + "/", skip=(".git", "certs"))
    files = {p: e for p, e in new.files.items() if not p.startswith(CHASQUID_DIR + "/")}
    files.update(live.files)
    return Snapshot(files, f"live {config_dir}", None, live.directories)
