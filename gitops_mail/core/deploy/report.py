"""What a deploy did on each host, and the lines that say so (progress and summary)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

UNCHANGED, CHANGED, FAILED = "unchanged", "changed", "failed"
GROUPED = "wheel "  # one progress line for all the wheels: "wheelhouse"


@dataclass(frozen=True)
class Outcome:
    step: str
    result: str  # UNCHANGED, CHANGED or FAILED
    detail: str = ""  # what differed, or the error
    seconds: float = 0.0


@dataclass
class HostReport:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)
    error: str = ""  # why the host failed ("" when it did not)
    hint: str = ""
    pushed: str = ""  # "pushed 1a2b3c4", "" when the host already had the branch
    push_output: list[str] = field(default_factory=list)  # the push hooks' lines
    chasquid: str = ""  # chasquid -version
    daemon: str = ""  # the service's state
    live: str = ""  # the live revision
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def changed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result == CHANGED]


_RESULT = re.compile(r"^(?:superseded by a later push: )?([a-z_]+) [0-9a-f]{7}: ")
_GOOD = ("applied", "unchanged")


def daemon_failure(push_lines: list[str]) -> str | None:
    """The post-receive line that says the daemon did not make the push live, if one does."""
    for line in push_lines:
        match = _RESULT.match(line)
        if match and match.group(1) not in _GOOD:
            return line
    return None


def progress_line(name: str, outcome: Outcome) -> str:
    detail = f": {outcome.detail}" if outcome.detail else ""
    took = f" ({outcome.seconds:.1f} s)" if outcome.seconds >= 0.1 else ""
    return f"[{name}] {outcome.step}: {outcome.result}{detail}{took}"


def group_wheels(outcomes: list[Outcome]) -> list[Outcome]:
    """The wheel uploads as one outcome, ``wheelhouse: changed: 2 of 30 uploaded``."""
    wheels = [o for o in outcomes if o.step.startswith(GROUPED)]
    if not wheels:
        return outcomes
    sent = [o for o in wheels if o.result != UNCHANGED]
    failed = [o for o in wheels if o.result == FAILED]
    result = FAILED if failed else CHANGED if sent else UNCHANGED
    detail = (
        failed[0].detail if failed else f"{len(sent)} of {len(wheels)} uploaded" if sent else ""
    )
    one = Outcome("wheelhouse", result, detail, sum(o.seconds for o in wheels))
    first = outcomes.index(wheels[0])
    rest = [o for o in outcomes if not o.step.startswith(GROUPED)]
    return [*rest[:first], one, *rest[first:]]


def summary_lines(reports: list[HostReport], records: dict[str, list[str]]) -> list[str]:
    width = max(len(r.name) for r in reports)
    lines = ["", "summary:"]
    for report in reports:
        lines.append(f"  {report.name:<{width}}  {_state(report)}")
        if report.error:
            lines.append(f"  {'':<{width}}  error: {report.error}")
            if report.hint:
                lines.append(f"  {'':<{width}}  hint: {report.hint}")
            continue
        facts = f"chasquid {report.chasquid or '?'}, daemon {report.daemon or '?'}"
        lines.append(f"  {'':<{width}}  {facts}, live {report.live[:7] or '(none yet)'}")
        lines += [f"  {'':<{width}}  note: {note}" for note in report.notes]
    failed = [r.name for r in reports if not r.ok]
    if records:
        lines += [
            "",
            "DNS records to publish (also in dns/<domain>.zone, committed back by the daemon):",
        ]
        for domain, rows in records.items():
            lines += [f"  {domain}:", *(f"    {row}" for row in rows)]
    done = len(reports) - len(failed)
    lines += [
        "",
        f"{done} of {len(reports)} host(s) deployed"
        + (f"; failed: {', '.join(failed)}" if failed else ""),
    ]
    return lines


def _state(report: HostReport) -> str:
    if not report.ok:
        return "FAILED"
    changed = len(group_wheels(report.changed))
    parts = [f"{changed} step(s) changed" if changed else "no change"]
    if report.pushed:
        parts.append(report.pushed)
    return "ok: " + "; ".join(parts)
