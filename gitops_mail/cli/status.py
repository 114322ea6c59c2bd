"""``gitops-mail status``, ``history`` and ``rollback``: what is live, what
happened, and undo through the same transaction as ``apply``.

Every line printed goes through ``shown``: reasons, summaries and drift paths
name what a pusher chose, and a control character in them stays an escape.

Exit codes (``EXIT_*``, also in ``status --help`` and the README): ``status``
0 when the branch tip is live (or on its way) and chasquid runs, 1 when
chasquid does not run (or on an error), 3 when the tip failed and is not
tried again by itself; ``rollback`` 0 when it rolled back, 3 when the
revision was already live (nothing was rolled back).
"""

from __future__ import annotations

import argparse
import json

from gitops_mail.apply.certificates import refusals
from gitops_mail.apply.reconcile import reconcile
from gitops_mail.apply.store import GIVEN_UP, Attempt, Record, StateStore
from gitops_mail.cli.certificates import CertStatus, certificate_status
from gitops_mail.core.printable import shown
from gitops_mail.core.report import one_line
from gitops_mail.daemon import status as daemonstatus
from gitops_mail.errors import GitopsMailError, NotFound
from gitops_mail.git import plumbing as gitplumbing
from gitops_mail.host import settings as hostsettings
from gitops_mail.host.livefs import configdir as livefs
from gitops_mail.host.livefs.scan import Drift
from gitops_mail.host.service import service_for

EXIT_NOT_RUNNING = 1  # status: chasquid does not run
EXIT_TIP_FAILED = 3  # status: the branch tip failed and is not tried again by itself
EXIT_NOT_ROLLED_BACK = 3  # rollback: the revision asked for is already live


def run(args: argparse.Namespace) -> int:
    settings = hostsettings.load(args.config)
    if args.command == "history":
        return _history(StateStore(settings.state_dir), args)
    if args.command == "rollback":
        return _rollback(settings, args)
    return _status(settings, args)


def _status(settings: hostsettings.HostSettings, args: argparse.Namespace) -> int:
    record = StateStore(settings.state_dir).load()
    drift = livefs.LiveDir(settings.chasquid.config_dir, settings.state_dir).drift()
    try:
        tip: str | None = gitplumbing.resolve_revision(settings.repo, settings.branch)
    except GitopsMailError:
        tip = None
    running = service_for(settings).is_running()
    failed = _tip_failed(record, tip)
    certs = certificate_status(settings, record.applied)
    doc = {
        "repo": str(settings.repo),
        "branch": settings.branch,
        "tip": tip,
        "live": record.applied,
        "pending": tip is not None and tip != record.applied and failed is None,
        "tip_failed": _attempt_json(failed) if failed else None,
        "chasquid_running": running,
        "last": _attempt_json(record.last) if record.last else None,
        "drift": {"modified": drift.modified, "missing": drift.missing, "foreign": drift.foreign},
        "certificates_refused": refusals(settings.state_dir),
        "certificates": [c.json() for c in certs],
    }
    doc["daemon"] = {
        **(daemonstatus.read_status(settings.state_dir) or {}),
        "running": daemonstatus.daemon_pid(settings.state_dir) is not None,
    }
    code = EXIT_NOT_RUNNING if not running else EXIT_TIP_FAILED if failed else 0
    if args.format == "json":
        print(json.dumps(doc, indent=2))  # ensure_ascii: every control character escaped
        return code
    for line in _status_lines(settings, record, drift, tip, running, certs=certs):
        print(shown(line))
    return code


def _tip_failed(record: Record, tip: str | None) -> Attempt | None:
    """The tip's last attempt, when it failed for good (not live, not retried)."""
    if tip is None or tip == record.applied:
        return None
    last = record.failed(tip)
    return last if last is not None and last.result in GIVEN_UP else None


def _status_lines(
    settings: hostsettings.HostSettings,
    record: Record,
    drift: Drift,
    tip: str | None,
    running: bool,
    *,
    certs: list[CertStatus],
) -> list[str]:
    lines = daemonstatus.status_lines(settings.state_dir)
    lines.append(f"repo:     {settings.repo} ({settings.branch} at {_short(tip)})")
    failed = _tip_failed(record, tip)
    if failed is not None and tip is not None:
        what = "failed" if failed.result == "failed" else "is invalid"
        why = one_line(failed.reason or "no reason recorded", tip)
        said = f"revision {tip[:7]} "  # most reasons name the revision first: say it once
        told = why.removeprefix(said) if why.startswith(said) else f"{what}: {why}"
        lines.append(f"tip:      {tip[:7]} {told}; live is {_short(record.applied)}")
        lines.append(
            f"live:     {_short(record.applied)} (the tip is not tried again until a new "
            "commit, a certificate renewal or `gitops-mail reconcile-now`)"
        )
    else:
        pending = "  (tip not applied yet)" if tip is not None and tip != record.applied else ""
        lines.append(f"live:     {_short(record.applied)}{pending}")
    state = "running" if running else "NOT RUNNING"
    lines.append(f"chasquid: {state} ({service_for(settings).describe()})")
    if record.last:
        lines.append(f"last:     {_attempt_line(record.last, whole=False)}")
    lines += [line for cert in certs for line in cert.lines()]
    for label, paths in (
        ("changed by hand", drift.modified),
        ("deleted by hand", drift.missing),
        ("not managed", drift.foreign),
    ):
        lines += [f"drift:    {path}: {label}" for path in paths]
    lines += [
        f"refused:  {entry.get('reason')} (the live certificate is still served)"
        for entry in refusals(settings.state_dir).values()
    ]
    return lines


def _short(rev: str | None) -> str:
    return rev[:7] if rev else "(none)"


def _attempt_line(a: Attempt, *, whole: bool = True) -> str:
    """One attempt: its reason whole (``history``, continued on indented lines), or
    shortened to one line (``status``)."""
    text = f"{a.started_at} {a.revision[:7]} {a.result}"
    if a.action != "none":
        text += f" ({a.action})"
    if a.summary:
        text += f": {a.summary}"
    if a.reason and not whole:
        text += f" ({one_line(a.reason, a.revision)})"
    text += f" [{a.duration_ms:.0f} ms]"
    if a.reason and whole:
        text += "\n    " + a.reason.replace("\n", "\n    ")
    return text


def _attempt_json(a: Attempt) -> dict[str, object]:
    return {
        "revision": a.revision,
        "started_at": a.started_at,
        "result": a.result,
        "reason": a.reason,
        "summary": a.summary,
        "action": a.action,
        "phases_ms": a.phases_ms,
        "duration_ms": a.duration_ms,
    }


def _history(store: StateStore, args: argparse.Namespace) -> int:
    record = store.load()
    attempts = record.history
    if args.revision:
        attempts = tuple(a for a in attempts if a.revision.startswith(args.revision.lower()))
    if args.format == "json":
        print(json.dumps([_attempt_json(a) for a in attempts], indent=2))
        return 0
    if not record.history:
        print("no apply has run on this host yet")
    elif not attempts:
        print(shown(f"no attempt at a revision starting {args.revision} in the last 50"))
        return 1
    for attempt in attempts:
        print("\n".join(shown(line) for line in _attempt_line(attempt).splitlines()))
    return 0


def _rollback(settings: hostsettings.HostSettings, args: argparse.Namespace) -> int:
    target = args.to or StateStore(settings.state_dir).load().previous_good()
    if target is None:
        raise NotFound(
            "there is no earlier good revision to roll back to",
            "name one with --to REV (see `gitops-mail history`)",
        )
    outcome = reconcile(settings, target, wait=not args.no_wait)
    if outcome.result == "unchanged":
        print(shown(f"not rolled back: {outcome.revision[:7]} is already live; nothing to undo"))
        return EXIT_NOT_ROLLED_BACK
    print(shown(f"rolled back: {outcome.message}"))
    print(
        "note: the next push (or `gitops-mail apply`) applies the branch tip again; "
        "`git revert` the bad commit to make the rollback stick"
    )
    return 0
