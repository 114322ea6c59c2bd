"""``gitops-mail plan``: what applying a revision would change.

Exit codes follow terraform's ``-detailed-exitcode``: 0 no change, 2 changes,
1 error (including a new revision that does not validate). ``--live`` is the
plan ``apply`` makes on this host: from the revision recorded live there to
the host's branch (or ``--rev``) of the repo the host settings name, with
what this host does to chasquid (``decide``: its ``reload_strategy``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from pathlib import Path

from gitops_mail.cli.source import collector_paused, load_source
from gitops_mail.cli.validate import host_policy
from gitops_mail.core import report
from gitops_mail.core.checks.validate import validate
from gitops_mail.core.plan.certs import CertFacts, facts_of, with_renewals
from gitops_mail.core.plan.make import make_plan
from gitops_mail.core.plan.model import Plan, decide
from gitops_mail.core.policy import HostPolicy
from gitops_mail.core.snapshot import CHASQUID_DIR, Snapshot
from gitops_mail.core.state import State, load_state
from gitops_mail.errors import GitopsMailError, InvalidConfig, RepoError
from gitops_mail.git import read as gitread


def run(args: argparse.Namespace) -> int:
    with collector_paused():
        if args.live:
            plan = _live_plan(args)
        else:
            _default_source(args, repo=".", rev="HEAD")
            new = load_source(args)
            policy = host_policy(getattr(args, "config", None))  # as validate judges
            plan = make_plan(_base_state(args, new), new, tuple(validate(new, policy=policy)))
    render = {"json": report.plan_json, "markdown": report.plan_markdown}.get(
        args.format, report.plan_text
    )
    print(render(plan), end="")
    if plan.has_errors:
        return 1
    return 2 if plan.changes else 0


def _default_source(args: argparse.Namespace, *, repo: str, rev: str) -> None:
    """Fill ``--repo`` and ``--rev`` where the command line left them out."""
    args.repo = args.repo if args.repo is not None else repo
    args.rev = args.rev if args.rev is not None else rev


def _live_plan(args: argparse.Namespace) -> Plan:
    """What ``apply`` would do on this host: from what is live to the new revision.

    What is live: the config dir as it is on disk (so changes made by hand show,
    which apply puts back), and everything else (the manifest: certificates,
    DNS records) from the revision recorded live, as apply's own plan has it.
    """
    from gitops_mail.apply.store import StateStore, Unproven  # noqa: PLC0415 - only --live
    from gitops_mail.host import settings as hostsettings  # noqa: PLC0415

    settings = hostsettings.load(getattr(args, "config", None))
    _default_source(args, repo=str(settings.repo), rev=settings.branch)
    new = hostsettings.view(settings, load_source(args))
    applied = StateStore(settings.state_dir).load().applied
    around = _revision_or_nothing(Path(args.repo), applied)
    live = load_state(_live_snapshot(settings.chasquid.config_dir, settings.path, around))
    if live.manifest is not None and live.manifest.hosts:  # this server's certificates only
        with contextlib.suppress(GitopsMailError):
            viewed = hostsettings.view(settings, load_state(around)).manifest
            live = dataclasses.replace(live, manifest=viewed)
    plan = make_plan(live, new, tuple(validate(new, policy=settings.policy)))
    plan = _renewals(plan, settings.chasquid.config_dir, _certificates(new, settings.policy))
    interrupted = Unproven.of(settings.state_dir).present()
    strategy = settings.chasquid.reload_strategy
    return dataclasses.replace(
        plan, decision=decide(plan, plan.action, strategy, interrupted=interrupted)
    )


def _certificates(new: State, policy: HostPolicy) -> dict[str, CertFacts]:
    """The leaf each certificate source holds now, read as apply reads it (one that
    cannot be read renews nothing; apply says what is wrong with it)."""
    from gitops_mail.host.certs.source import (  # noqa: PLC0415 - cryptography, --live only
        CertificateError,
        load_certificate,
    )

    found: dict[str, CertFacts] = {}
    for source in new.manifest.certificates if new.manifest else ():
        with contextlib.suppress(CertificateError):
            found[source.name] = facts_of(load_certificate(source, policy=policy))
    return found


def _renewals(plan: Plan, config_dir: Path, certs: dict[str, CertFacts]) -> Plan:
    from gitops_mail.host.certs import installed  # noqa: PLC0415 - cryptography, --live only

    live = {name: installed.leaf(config_dir, name) for name in certs}
    return with_renewals(plan, {n: f for n, f in live.items() if f is not None}, certs)


def _revision_or_nothing(repo: Path, revision: str | None) -> Snapshot:
    if revision is not None:
        try:
            return gitread.read_revision(repo, revision)
        except RepoError:
            pass  # history rewritten: as if nothing were live, as apply does
    return Snapshot({}, "nothing")


def _live_snapshot(config_dir: Path, settings_path: Path, around: Snapshot) -> Snapshot:
    """The live config dir as if it were a revision: chasquid's tree from the disk,
    every other file from ``around``, the revision recorded live."""
    from gitops_mail.host import localfs  # noqa: PLC0415 - only --live needs it
    from gitops_mail.host.livefs.scan import WORK_DIR  # noqa: PLC0415

    if not config_dir.is_dir():
        raise InvalidConfig(
            f"chasquid's config dir {config_dir} is not a directory "
            f"(chasquid.config_dir in {settings_path})",
            "fix chasquid.config_dir in the host settings, or install chasquid first",
        )
    skip = (".git", "certs", WORK_DIR)  # WORK_DIR: gitops-mail's scratch space, not chasquid's
    live = localfs.read_directory(config_dir, prefix=CHASQUID_DIR + "/", skip=skip)
    files = {p: e for p, e in around.files.items() if not p.startswith(CHASQUID_DIR + "/")}
    files.update(live.files)
    return Snapshot(files, f"live {config_dir}", None, live.directories)


def _base_state(args: argparse.Namespace, new: State) -> State | None:
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
