"""Rendering problems and plans for people (text, Markdown) and programs (JSON).

Pure: data in, text out. Nothing here can print a secret, because nothing it
is given holds one (plans carry scheme names, never hashes). Names come from the
repo and may hold control characters: they are escaped here (``printable``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gitops_mail.core.printable import json_text, shown
from gitops_mail.core.problems import Problem, Severity
from gitops_mail.core.words import counted

if TYPE_CHECKING:  # plan imports every format; validate output must not pay for it
    from gitops_mail.core.plan.model import Change, Plan

_SIGN = {"added": "+", "removed": "-"}


def problems_text(problems: Sequence[Problem], source: str) -> str:
    """Each problem, the accepted warnings after the others, then the counts."""
    errors = sum(p.is_error for p in problems)
    notes = sum(p.severity is Severity.NOTE for p in problems)
    accepted = [p for p in problems if p.severity is Severity.ACCEPTED]
    warnings = len(problems) - errors - notes - len(accepted)
    lines = [p.format() for p in problems if p.severity is not Severity.ACCEPTED]
    lines += [p.format() for p in accepted]
    more = f", {counted(notes, 'note')}" if notes else ""
    more += f", {len(accepted)} accepted" if accepted else ""
    if errors:
        counts = f"{counted(errors, 'error')}, {counted(warnings, 'warning')}"
        lines.append(f"{source}: invalid: {counts}{more}")
    else:
        lines.append(f"{source}: valid" + (f", {counted(warnings, 'warning')}" if warnings else ""))
        lines[-1] += more
    return "\n".join(lines) + "\n"


def problems_json(problems: Sequence[Problem], source: str, revision: str | None) -> str:
    doc = {
        "source": source,
        "revision": revision,
        "valid": not any(p.is_error for p in problems),
        "problems": [p.to_json() for p in problems],
    }
    return json_text(doc) + "\n"


ONE_LINE_LIMIT = 300  # characters of a reason shown on one line (status, push feedback)


def one_line(reason: str, revision: str, limit: int = ONE_LINE_LIMIT) -> str:
    """A reason history keeps whole, on one line: cut at ``limit`` characters when
    longer, saying which command shows the rest."""
    text = ""
    for line in (line.strip() for line in reason.splitlines() if line.strip()):
        text += ("" if not text else " " if text.endswith(":") else "; ") + line
    if len(text) <= limit:
        return text
    return (
        f"{text[: limit - 1].rstrip()}… (all of it: gitops-mail history --revision {revision[:7]})"
    )


def change_line(change: Change) -> str:
    """``+ alias sales@example.com -> a@x``, ``~ hostname: a -> b``, ``- user u@d``."""
    sign = _SIGN.get(change.op, "~")
    if change.detail:  # ~ certificate mail.example.com renewed: SHA256 ab12… → cd34…, ...
        return shown(f"{sign} {change.area} {change.subject} {change.op}: {change.detail}")
    text = f"{sign} {change.area}"
    if change.subject != change.area:
        text += f" {change.subject}"
    if change.op not in _SIGN and change.op != "changed":
        text += f": {change.op}"
    if change.before is not None and change.after is not None:
        text += f": {change.before} -> {change.after}"
    elif change.after is not None:
        text += f" -> {change.after}"
    elif change.before is not None:
        text += f" (was {change.before})"
    return shown(text)


def plan_text(plan: Plan) -> str:
    lines = [shown(f"Plan: {plan.base} -> {plan.target}")]
    lines += [
        f"  {change_line(c)}" + (f"\n      note: {shown(c.note)}" if c.note else "")
        for c in plan.changes
    ]
    if not plan.changes:
        lines.append("  no changes")
    lines.append(f"chasquid: {_action_text(plan)}")
    if plan.problems:
        lines.append("Problems in the new revision:")
        lines += ["  " + p.format().replace("\n", "\n  ") for p in plan.problems]
    return "\n".join(lines) + "\n"


def _action_text(plan: Plan) -> str:
    """What chasquid gets: the host's decision when planned for one, else what the
    changes need, and what a host that restarts instead does."""
    if plan.decision is not None:
        return _verb(plan.decision.action.label, plan.decision.reasons)
    text = _verb(plan.action.label, plan.reasons)
    if plan.action.label == "reload":
        text += "; a host with reload_strategy: restart (the default) restarts chasquid instead"
    return text


def _verb(action: str, reasons: Sequence[str]) -> str:
    if action == "none":
        return "nothing to do"
    verb = "restart" if action == "restart" else "reload users and aliases"
    return shown(f"{verb} ({'; '.join(reasons)})")


def plan_markdown(plan: Plan) -> str:
    lines = [shown(f"### gitops-mail plan: `{plan.base}` → `{plan.target}`"), ""]
    if plan.changes:
        lines += ["| | change | subject | before | after |", "|---|---|---|---|---|"]
        lines += [_markdown_row(c) for c in plan.changes]
    else:
        lines.append("No changes.")
    lines += ["", f"**chasquid:** {_action_text(plan)}"]
    for note in dict.fromkeys(c.note for c in plan.changes if c.note):
        lines += ["", f"> **Note:** {shown(note)}"]
    if plan.problems:
        lines += ["", "#### Problems", ""]
        lines += [_markdown_problem(p) for p in plan.problems]
    return "\n".join(lines) + "\n"


def _cell(text: str | None) -> str:
    return "" if text is None else shown(text).replace("|", "\\|")


def _markdown_row(c: Change) -> str:
    sign = _SIGN.get(c.op, "~")
    before, after = (None, c.detail) if c.detail else (c.before, c.after)
    return (
        f"| {sign} | {_cell(c.area)} {_cell(c.op)} | `{_cell(c.subject)}` | {_cell(before)} "
        f"| {_cell(after)} |"
    )


def _markdown_problem(p: Problem) -> str:
    icon = {Severity.ERROR: "❌", Severity.WARNING: "⚠️", Severity.ACCEPTED: "☑️"}.get(
        p.severity, "\u2139\ufe0f"
    )
    hint = f" — {shown(p.hint)}" if p.hint else ""
    return f"- {icon} `{shown(p.location)}`: {shown(p.message)}{hint}"


def plan_json(plan: Plan) -> str:
    doc = {
        "base": plan.base,
        "target": plan.target,
        "action": (plan.decision.action if plan.decision else plan.action).label,
        "reasons": list(plan.decision.reasons if plan.decision else plan.reasons),
        "needs": plan.action.label,  # what the changes need; "action" is what is done
        "changes": [
            {
                "area": c.area,
                "op": c.op,
                "subject": c.subject,
                "before": c.before,
                "after": c.after,
                "action": c.action.label,
                "why": c.why,
                "note": c.note,
                "detail": c.detail,
            }
            for c in plan.changes
        ],
        "problems": [p.to_json() for p in plan.problems],
        "valid": not plan.has_errors,
    }
    return json_text(doc) + "\n"
