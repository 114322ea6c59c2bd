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


def change_line(change: Change) -> str:
    """``+ alias sales@example.com -> a@x``, ``~ hostname: a -> b``, ``- user u@d``."""
    sign = _SIGN.get(change.op, "~")
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
    action = plan.action.label
    if action == "none":
        return "nothing to do"
    verb = "restart" if action == "restart" else "reload users and aliases"
    return shown(f"{verb} ({'; '.join(plan.reasons)})")


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
    return (
        f"| {sign} | {_cell(c.area)} {_cell(c.op)} | `{_cell(c.subject)}` | {_cell(c.before)} "
        f"| {_cell(c.after)} |"
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
        "action": plan.action.label,
        "reasons": list(plan.reasons),
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
            }
            for c in plan.changes
        ],
        "problems": [p.to_json() for p in plan.problems],
        "valid": not plan.has_errors,
    }
    return json_text(doc) + "\n"
