"""What ``gitops-mail check`` found, one ``Finding`` per record or endpoint, and how it
prints (a table or JSON). Pure.

A finding's ``message`` never holds anything that changes between two runs
while the record does not (TTLs are their own field), so the daemon can tell
a change from a repetition by comparing findings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

OK, WARNING, ERROR = "ok", "warning", "error"
STATUSES = (OK, WARNING, ERROR)
# Every check a finding can come from: metrics label them with these, nothing else.
# "check": the run itself (its input could not be read), not a record.
CHECKS = ("mx", "a", "aaaa", "ptr", "spf", "dkim", "dmarc", "mta-sts", "tls-rpt", "tls", "check")


@dataclass(frozen=True)
class Finding:
    check: str  # one of CHECKS
    subject: str  # what it is about: a domain, the hostname, an address, a port
    status: str  # ok | warning | error
    message: str  # what was found, and what was expected when it differs
    name: str = ""  # the DNS name asked, or the endpoint connected to
    ttl: int | None = None  # seconds the resolver may keep the answer
    hint: str = ""  # how to fix it

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What makes two runs' findings the same (TTLs left out: they count down)."""
        return self.check, self.subject, self.status, self.message


def exit_code(findings: Iterable[Finding], *, strict: bool = False) -> int:
    """0 when nothing is wrong (nor, with ``strict``, worth a warning), else 1."""
    bad = (ERROR, WARNING) if strict else (ERROR,)
    return 1 if any(f.status in bad for f in findings) else 0


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    found = dict.fromkeys(STATUSES, 0)
    for finding in findings:
        found[finding.status] += 1
    return found


def problems(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.status != OK]


def line(finding: Finding) -> str:
    """One finding as one line: ``error mx example.com: ...``."""
    return f"{finding.status} {finding.check} {finding.subject}: {finding.message}"


def to_json(findings: Sequence[Finding], **about: object) -> str:
    """The findings as a JSON document; ``about`` adds keys (the revision checked, ...)."""
    doc: dict[str, object] = {**about, "ok": exit_code(findings) == 0, "counts": counts(findings)}
    doc["findings"] = [asdict(f) for f in findings]
    return json.dumps(doc, indent=2)


def table(findings: Sequence[Finding]) -> str:
    """Aligned columns STATUS CHECK SUBJECT TTL MESSAGE, hints indented below, a summary."""
    rows = [("STATUS", "CHECK", "SUBJECT", "TTL", "MESSAGE")]
    rows += [
        (f.status.upper(), f.check, f.subject, "" if f.ttl is None else str(f.ttl), f.message)
        for f in findings
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    out = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        out.append("  ".join([*cells, row[4]]).rstrip())
        hint = findings[index - 1].hint if index else ""
        if hint and findings[index - 1].status != OK:
            out.append(" " * (sum(widths) + 8) + f"hint: {hint}")
    found = counts(findings)
    out.append(f"{found[ERROR]} errors, {found[WARNING]} warnings, {found[OK]} ok")
    return "\n".join(out) + "\n"
