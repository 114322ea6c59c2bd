"""``deploy --status``: ask one host over SSH what its daemon made live.

One login, one script: the host's ``gitops-mail status --format json``
(through the link deploy installed, with the settings it wrote), the service
manager's word for the daemon, and whether the watched branch and the live
revision hold the conf repo's tip.
"""

from __future__ import annotations

import json
import shlex

from gitops_mail.core.deploy.layout import UNIT, Layout
from gitops_mail.core.deploy.rollout import Rollout
from gitops_mail.core.deploy.target import Target
from gitops_mail.errors import GitopsMailError
from gitops_mail.host.remote.ssh import Session

q = shlex.quote
_MARK = "--- gitops-mail rollout ---"


def host_rollout(target: Target, layout: Layout, tip: str, *, accept_new: bool) -> Rollout:
    found = Rollout(target.name)
    session: Session | None = None
    try:
        session = Session(target, accept_new=accept_new)
        _ask(session, layout, tip, found)
    except GitopsMailError as exc:
        found.error = exc.message
    finally:
        if session is not None:
            session.close()
    return found


def _ask(session: Session, layout: Layout, tip: str, found: Rollout) -> None:
    repo = q(layout.at(layout.repo))
    git = f"git -c safe.directory={repo} -C {repo}"
    branch = q(f"refs/heads/{layout.branch}")
    script = (
        f"{q(layout.command)} --config {q(layout.at(layout.settings))} status --format json"
        f" 2>&1; echo {q(_MARK)}; "
        f'echo "active=$({q(layout.systemctl)} is-active {UNIT} 2>/dev/null)"; '
        f"{git} merge-base --is-ancestor {q(tip)} {branch} 2>/dev/null && echo has=yes; true"
    )
    out = session.run(script, check=False).stdout
    status_text, _, rest = out.partition(_MARK + "\n")
    facts = dict(line.partition("=")[::2] for line in rest.splitlines())
    found.daemon = facts.get("active", "").strip() or "unknown"
    found.has_tip = facts.get("has") == "yes"
    try:
        status = json.loads(status_text)
    except ValueError:
        found.error = f"`gitops-mail status` said: {status_text.strip()[-300:]}"
        return
    found.live, found.host_tip = status.get("live") or "", status.get("tip") or ""
    found.last = _last(status.get("last"))
    if found.live and found.has_tip:
        check = f"{git} merge-base --is-ancestor {q(tip)} {q(found.live)}"
        found.reached = session.run(check, check=False).code == 0


def _last(last: object) -> str:
    if not isinstance(last, dict):
        return ""
    said = f"{last.get('result', '?')} {str(last.get('revision', ''))[:7]}"
    reason = str(last.get("reason") or "")
    return f"{said}: {reason}" if reason else said
