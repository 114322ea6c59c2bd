"""``gitops-mail status``, ``history`` and ``rollback``: what is live, what
happened, and undo through the same transaction as ``apply``.

Every line printed goes through ``shown``: reasons, summaries and drift paths
name what a pusher chose, and a control character in them stays an escape.
"""

from __future__ import annotations

import argparse
import json

from gitops_mail.apply.certificates import refusals
from gitops_mail.apply.reconcile import reconcile
from gitops_mail.apply.store import Attempt, Record, StateStore
from gitops_mail.core.printable import shown
from gitops_mail.daemon import status as daemonstatus
from gitops_mail.errors import GitopsMailError, NotFound
from gitops_mail.git import plumbing as gitplumbing
from gitops_mail.host import settings as hostsettings
from gitops_mail.host.livefs import configdir as livefs
from gitops_mail.host.livefs.scan import Drift
from gitops_mail.host.service import service_for


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
    doc = {
        "repo": str(settings.repo),
        "branch": settings.branch,
        "tip": tip,
        "live": record.applied,
        "pending": tip is not None and tip != record.applied,
        "chasquid_running": running,
        "last": _attempt_json(record.last) if record.last else None,
        "drift": {"modified": drift.modified, "missing": drift.missing, "foreign": drift.foreign},
        "certificates_refused": refusals(settings.state_dir),
    }
    doc["daemon"] = {
        **(daemonstatus.read_status(settings.state_dir) or {}),
        "running": daemonstatus.daemon_pid(settings.state_dir) is not None,
    }
    if args.format == "json":
        print(json.dumps(doc, indent=2))  # ensure_ascii: every control character escaped
        return 0
    for line in _status_lines(settings, record, drift, tip, running):
        print(shown(line))
    return 0 if running else 1


def _status_lines(
    settings: hostsettings.HostSettings,
    record: Record,
    drift: Drift,
    tip: str | None,
    running: bool,
) -> list[str]:
    lines = daemonstatus.status_lines(settings.state_dir)
    lines.append(f"repo:     {settings.repo} ({settings.branch} at {_short(tip)})")
    pending = "  (tip not applied yet)" if tip is not None and tip != record.applied else ""
    lines.append(f"live:     {_short(record.applied)}{pending}")
    state = "running" if running else "NOT RUNNING"
    lines.append(f"chasquid: {state} ({service_for(settings).describe()})")
    if record.last:
        lines.append(f"last:     {_attempt_line(record.last)}")
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


def _attempt_line(a: Attempt) -> str:
    text = f"{a.started_at} {a.revision[:7]} {a.result}"
    if a.summary:
        text += f": {a.summary}"
    if a.reason:
        text += f" ({a.reason})"
    return text + f" [{a.duration_ms:.0f} ms]"


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
    if args.format == "json":
        print(json.dumps([_attempt_json(a) for a in record.history], indent=2))
        return 0
    if not record.history:
        print("no apply has run on this host yet")
    for attempt in record.history:
        print(shown(_attempt_line(attempt)))
    return 0


def _rollback(settings: hostsettings.HostSettings, args: argparse.Namespace) -> int:
    target = args.to or StateStore(settings.state_dir).load().previous_good()
    if target is None:
        raise NotFound(
            "there is no earlier good revision to roll back to",
            "name one with --to REV (see `gitops-mail history`)",
        )
    outcome = reconcile(settings, target, wait=not args.no_wait)
    print(shown(f"rolled back: {outcome.message}"))
    print(
        "note: the next push (or `gitops-mail apply`) applies the branch tip again; "
        "`git revert` the bad commit to make the rollback stick"
    )
    return 0
