"""Feedback on push: what the ``pre-receive`` and ``post-receive`` hooks decide and say.

Pure: lines in, decisions and text out. ``cli/hooks.py`` reads standard
input, the revision and ``state.json``, and prints what this module returns.

git feeds both hooks one ``<old> <new> <ref>`` line per updated ref; an id
of zeros stands for "no such ref" (a creation or a deletion). Only the update
of the branch the host settings watch matters: other refs pass untouched.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gitops_mail.apply.store import Attempt, Record
from gitops_mail.core import report
from gitops_mail.core.plan.model import Action
from gitops_mail.core.policy import Limits
from gitops_mail.core.printable import shown
from gitops_mail.core.problems import Problem, has_errors
from gitops_mail.errors import UsageError

HOOKS = ("pre-receive", "post-receive")
MARKER = "# gitops-mail push hook: installed by `gitops-mail hooks install`"
RESULT_SLACK = 2.0  # seconds: started_at has whole seconds, and the daemon may beat the hook


@dataclass(frozen=True)
class RefUpdate:
    old: str
    new: str
    ref: str

    @property
    def is_deletion(self) -> bool:
        return _zero(self.new)

    @property
    def is_creation(self) -> bool:
        return _zero(self.old)


def _zero(oid: str) -> bool:
    return set(oid) == {"0"}


def parse_updates(text: str) -> list[RefUpdate]:
    """The ``<old> <new> <ref>`` lines git writes to a receive hook's standard input."""
    updates = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(" ")
        if len(fields) != 3 or not all(_oid(f) for f in fields[:2]) or not fields[2]:
            raise UsageError(
                f"standard input line {number} is not `<old-id> <new-id> <ref>`: {line!r}",
                "this command is run by git as a receive hook; install it with "
                "`gitops-mail hooks install REPO`",
            )
        updates.append(RefUpdate(*fields))
    return updates


def _oid(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def branch_ref(branch: str) -> str:
    """``main`` -> ``refs/heads/main``; a full ref name stays as it is."""
    return branch if branch.startswith("refs/") else f"refs/heads/{branch}"


def watched_update(updates: Sequence[RefUpdate], branch: str) -> RefUpdate | None:
    ref = branch_ref(branch)
    return next((u for u in updates if u.ref == ref), None)


def deletion_refused(update: RefUpdate) -> str:
    return (
        f"gitops-mail: refusing to delete {update.ref}: the mail server is applied from it\n"
        "    hint: push a commit that changes the configuration instead; to really delete "
        "the branch, remove the repo's pre-receive hook first\n"
    )


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    text: str  # for the pusher, every line ending in a newline


def verdict(problems: Sequence[Problem], update: RefUpdate, branch: str) -> Verdict:
    """Accept unless some problem is an error; show every problem either way."""
    source = f"{branch} ({update.new[:7]})"
    text = report.problems_text(problems, source)
    if not has_errors(problems):
        return Verdict(True, text)
    text += "gitops-mail: push rejected: fix the problems above and push again\n"
    return Verdict(False, text)


# --- post-receive ----------------------------------------------------------------------


def since(start: datetime) -> datetime:
    """The oldest ``started_at`` an attempt at a tip pushed just before ``start`` can have.

    The daemon may start (and record) its attempt before the post-receive hook
    starts reading, and ``started_at`` is kept in whole seconds.
    """
    return start.replace(microsecond=0) - timedelta(seconds=RESULT_SLACK)


def result_of(record: Record, tip: str, after: datetime) -> Attempt | None:
    """The newest attempt at ``tip`` that started at ``after`` or later."""
    return next((a for a in _recent(record, after) if a.revision == tip), None)


def later_attempt(record: Record, tip: str, after: datetime) -> Attempt | None:
    """The newest attempt at another revision since ``after``: a later push, perhaps."""
    return next((a for a in _recent(record, after) if a.revision != tip), None)


def _recent(record: Record, after: datetime) -> list[Attempt]:
    return [a for a in record.history if _started(a) >= after]


def _started(attempt: Attempt) -> datetime:
    try:
        started = datetime.fromisoformat(attempt.started_at)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)  # unreadable: never "recent"
    return started if started.tzinfo else started.replace(tzinfo=UTC)


def result_text(attempt: Attempt, *, superseded: bool = False) -> str:
    """``applied 1a2b3c4: restarted chasquid, probes ok (1 alias added)``, or what went
    wrong (its reason on one line: history keeps it whole)."""
    lead = "superseded by a later push: " if superseded else ""
    rev = attempt.revision[:7]
    if attempt.result == "applied":
        action = Action.of(attempt.action)  # as apply said it: `restarted chasquid`
        did = action.done if action is not None else shown(attempt.action)
        line = f"applied {rev}: {did}, probes ok"
        if attempt.summary and attempt.summary != "no change":
            line += f" ({shown(attempt.summary)})"
        return f"{lead}{line}\n"
    if attempt.result == "unchanged":
        return f"{lead}unchanged {rev}: already live, nothing to do\n"
    why = report.one_line(attempt.reason or "no reason recorded", attempt.revision)
    text = f"{lead}{shown(attempt.result)} {rev}: {shown(why)}\n"
    if attempt.result in ("failed", "invalid") and "swap" not in attempt.phases_ms:
        text += "the live server was not touched: it keeps its previous configuration\n"
    if attempt.result == "error":  # the host's fault, not the revision's
        text += "the daemon tries again with back-off; `gitops-mail status` says when\n"
    return text + f"see `gitops-mail history --revision {rev}` on the host for the details\n"


def waiting_text(tip: str, timeout: float) -> str:
    return f"gitops-mail: waiting up to {timeout:g} s for the daemon to apply {tip[:7]}\n"


def timeout_text(timeout: float) -> str:
    return f"no result within {timeout:g} s; see gitops-mail status\n"


# --- bounds -------------------------------------------------------------------------------


def bound_text(hook: str, exceeded: str, limits: Limits) -> str:
    """What a hook says when it reached ``limits.hook_seconds`` or ``limits.hook_memory_mb``."""
    if exceeded == "time":
        what = f"took longer than {limits.hook_seconds:g} s"
        setting = "limits.hook_seconds"
    else:
        what = f"needed more than {limits.hook_memory_mb} MB of memory"
        setting = "limits.hook_memory_mb"
    if hook != "pre-receive":
        return f"gitops-mail: stopped: waiting {what} ({setting}); see gitops-mail status\n"
    return (
        f"gitops-mail: push rejected: checking the pushed commit {what}, the limit "
        f"of this host ({setting} in its settings)\n"
        "    hint: push a smaller change; the host's administrator can raise the limit\n"
    )


# --- the installed scripts ---------------------------------------------------------------


def hook_script(hook: str, python: str, config: str, timeout: float) -> str:
    """A ``/bin/sh`` hook that runs ``python -m gitops_mail.cli.hooks HOOK``.

    Every path is absolute and recorded here: git runs receive hooks with the
    pusher's environment, which may have no virtualenv, no ``PATH`` to speak
    of and no ``GITOPS_MAIL_CONFIG``.
    """
    argv = [python, "-m", "gitops_mail.cli.hooks", hook, "--config", config]
    if hook == "post-receive":
        argv += ["--timeout", f"{timeout:g}"]
    return (
        "#!/bin/sh\n"
        f"{MARKER}\n"
        "# Reinstall with `gitops-mail hooks install` rather than editing this file.\n"
        'PATH="${PATH:-/usr/local/bin:/usr/bin:/bin}"\n'
        "PYTHONUTF8=1\n"
        "export PATH PYTHONUTF8\n"
        f"exec {shlex.join(argv)}\n"
    )


def is_ours(script: bytes) -> bool:
    return MARKER.encode() in script
