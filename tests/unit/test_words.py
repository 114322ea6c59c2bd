"""Counted nouns: one helper for plan, apply, history and the push feedback."""

from __future__ import annotations

import pytest

from gitops_mail.apply.transaction import summary
from gitops_mail.core import report
from gitops_mail.core.plan.model import Action, Change, Plan
from gitops_mail.core.problems import error, warning
from gitops_mail.core.words import counted


@pytest.mark.parametrize(
    ("n", "noun", "text"),
    [
        (1, "alias", "1 alias"),
        (4, "alias", "4 aliases"),
        (0, "error", "0 errors"),
        (2, "catch-all", "2 catch-alls"),
        (2, "entry", "2 entries"),
        (2, "day", "2 days"),
        (1, "manifest", "1 manifest setting"),
        (16, "manifest", "16 manifest settings"),
        (3, "listen", "3 listen addresses"),
        (2, "file", "2 files"),
    ],
)
def test_counted(n: int, noun: str, text: str) -> None:
    assert counted(n, noun) == text


def _changes(area: str, op: str, n: int) -> list[Change]:
    return [Change(area, op, f"{area}{i}", None, None, Action.NONE, "") for i in range(n)]


def test_the_one_line_summary_of_history_and_push_feedback_counts_in_words() -> None:
    changes = [*_changes("alias", "added", 4), *_changes("manifest", "added", 16)]
    changes += _changes("user", "removed", 1)
    plan = Plan("a", "b", tuple(changes), ())
    assert summary(plan) == "4 aliases added, 16 manifest settings added, 1 user removed"


def test_validate_counts_in_the_same_words() -> None:
    found = [error("a", 1, "x.y", "m"), warning("a", 2, "x.z", "n"), warning("a", 3, "x.z", "o")]
    assert report.problems_text(found, "HEAD").endswith("HEAD: invalid: 1 error, 2 warnings\n")
