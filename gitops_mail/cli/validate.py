"""``gitops-mail validate``: every problem of a revision at once."""

from __future__ import annotations

import argparse

from gitops_mail.cli.source import collector_paused, load_source
from gitops_mail.core import report
from gitops_mail.core.checks.validate import validate
from gitops_mail.core.problems import has_errors


def run(args: argparse.Namespace) -> int:
    with collector_paused():
        state = load_source(args)
        found = validate(state)
    source = state.snapshot.source
    if args.format == "json":
        print(report.problems_json(found, source, state.snapshot.revision), end="")
    else:
        print(report.problems_text(found, source), end="")
    failed = has_errors(found) or (args.strict and bool(found))
    return 1 if failed else 0
