"""Rendering problems and plans: text, Markdown and JSON."""

from __future__ import annotations

import json

from gitops_mail.core import report
from gitops_mail.core.plan.model import (
    WHY_INTERRUPTED,
    WHY_RESTART_NOT_WAIT,
    Action,
    Change,
    Plan,
    decide,
)
from gitops_mail.core.problems import Severity, error, warning

ERR = error("chasquid/domains/example.com/aliases", 3, "aliases.syntax", "missing ':'", "add it")
WARN = warning("gitops-mail.yaml", None, "manifest.x", "odd | value", "")
HOSTNAME = Change(
    "hostname",
    "changed",
    "hostname",
    "mail.a.com",
    "mail.b.com",
    Action.RESTART,
    "chasquid reads chasquid.conf only at start",
    "point the PTR record at mail.b.com",
)
PIPE = Change(
    "alias",
    "added",
    "list|x@example.com",
    None,
    "| /usr/bin/list -a",
    Action.RELOAD,
    "re-read by the 30 s reload",
)
USER = Change(
    "user",
    "password changed",
    "i@example.com",
    None,
    None,
    Action.RELOAD,
    "re-read by the 30 s reload",
)
REMOVED = Change(
    "alias",
    "removed",
    "old@example.com",
    "x@y.z",
    None,
    Action.RELOAD,
    "re-read by the 30 s reload",
)
PLAN = Plan("abc1234", "def5678", (HOSTNAME, PIPE, USER, REMOVED), (ERR, WARN))


def test_problems_text_lists_each_problem_then_a_summary() -> None:
    assert report.problems_text([ERR, WARN], "HEAD (abc1234)") == (
        "chasquid/domains/example.com/aliases:3: error: missing ':'\n"
        "    hint: add it\n"
        "gitops-mail.yaml: warning: odd | value [manifest.x]\n"
        "HEAD (abc1234): invalid: 1 error, 1 warning\n"
    )


def test_problems_text_when_valid() -> None:
    assert report.problems_text([], "HEAD (abc1234)") == "HEAD (abc1234): valid\n"
    assert report.problems_text([WARN, WARN], "w") == (
        "gitops-mail.yaml: warning: odd | value [manifest.x]\n" * 2 + "w: valid, 2 warnings\n"
    )
    two = [ERR, error("a", 1, "c", "m")]
    assert report.problems_text(two, "s").endswith("s: invalid: 2 errors, 0 warnings\n")


def test_problems_json() -> None:
    doc = json.loads(report.problems_json([ERR, WARN], "HEAD (abc1234)", "abc1234" + "0" * 33))
    assert doc == {
        "source": "HEAD (abc1234)",
        "revision": "abc1234" + "0" * 33,
        "valid": False,
        "problems": [
            {
                "path": "chasquid/domains/example.com/aliases",
                "line": 3,
                "column": None,
                "code": "aliases.syntax",
                "severity": "error",
                "message": "missing ':'",
                "hint": "add it",
            },
            {
                "path": "gitops-mail.yaml",
                "line": None,
                "column": None,
                "code": "manifest.x",
                "severity": "warning",
                "message": "odd | value",
                "hint": "",
            },
        ],
    }
    assert json.loads(report.problems_json([WARN], "s", None))["valid"] is True


def test_change_lines() -> None:
    assert [report.change_line(c) for c in PLAN.changes] == [
        "~ hostname: mail.a.com -> mail.b.com",
        "+ alias list|x@example.com -> | /usr/bin/list -a",
        "~ user i@example.com: password changed",
        "- alias old@example.com (was x@y.z)",
    ]


def test_plan_text() -> None:
    assert report.plan_text(PLAN) == (
        "Plan: abc1234 -> def5678\n"
        "  ~ hostname: mail.a.com -> mail.b.com\n"
        "      note: point the PTR record at mail.b.com\n"
        "  + alias list|x@example.com -> | /usr/bin/list -a\n"
        "  ~ user i@example.com: password changed\n"
        "  - alias old@example.com (was x@y.z)\n"
        "chasquid: restart (chasquid reads chasquid.conf only at start)\n"
        "Problems in the new revision:\n"
        "  chasquid/domains/example.com/aliases:3: error: missing ':'\n"
        "      hint: add it\n"
        "  gitops-mail.yaml: warning: odd | value [manifest.x]\n"
    )


def test_plan_text_of_a_reload_and_of_nothing() -> None:
    reload = Plan("a", "b", (USER,), ())
    assert report.plan_text(reload).splitlines()[-1] == (
        "chasquid: reload users and aliases (re-read by the 30 s reload); a host with "
        "reload_strategy: restart (the default) restarts chasquid instead"
    )
    assert report.plan_text(Plan("a", "b", (), ())) == (
        "Plan: a -> b\n  no changes\nchasquid: nothing to do\n"
    )


def test_plan_markdown_escapes_pipes_in_table_cells() -> None:
    text = report.plan_markdown(PLAN)
    assert text == (
        "### gitops-mail plan: `abc1234` → `def5678`\n"
        "\n"
        "| | change | subject | before | after |\n"
        "|---|---|---|---|---|\n"
        "| ~ | hostname changed | `hostname` | mail.a.com | mail.b.com |\n"
        "| + | alias added | `list\\|x@example.com` |  | \\| /usr/bin/list -a |\n"
        "| ~ | user password changed | `i@example.com` |  |  |\n"
        "| - | alias removed | `old@example.com` | x@y.z |  |\n"
        "\n"
        "**chasquid:** restart (chasquid reads chasquid.conf only at start)\n"
        "\n"
        "> **Note:** point the PTR record at mail.b.com\n"
        "\n"
        "#### Problems\n"
        "\n"
        "- ❌ `chasquid/domains/example.com/aliases:3`: missing ':' — add it\n"
        "- ⚠️ `gitops-mail.yaml`: odd | value\n"
    )
    for row in text.splitlines()[4:8]:  # every row keeps exactly six unescaped bars
        assert row.replace("\\|", "").count("|") == 6


def test_plan_markdown_without_changes() -> None:
    assert report.plan_markdown(Plan("a", "b", (), ())) == (
        "### gitops-mail plan: `a` → `b`\n\nNo changes.\n\n**chasquid:** nothing to do\n"
    )


def test_plan_markdown_newlines_stay_in_their_cell() -> None:
    odd = Change("file", "added", "a\nb", None, "x\ny", Action.NONE, "")
    row = report.plan_markdown(Plan("a", "b", (odd,), ())).splitlines()[4]
    assert row == "| + | file added | `a\\nb` |  | x\\ny |"


def test_plan_json_parses_and_says_everything() -> None:
    doc = json.loads(report.plan_json(PLAN))
    assert doc["base"] == "abc1234" and doc["target"] == "def5678"
    assert doc["action"] == "restart"
    assert doc["reasons"] == ["chasquid reads chasquid.conf only at start"]
    assert doc["valid"] is False
    assert doc["changes"][1] == {
        "area": "alias",
        "op": "added",
        "subject": "list|x@example.com",
        "before": None,
        "after": "| /usr/bin/list -a",
        "action": "reload",
        "why": "re-read by the 30 s reload",
        "note": "",
        "detail": "",
    }
    assert [p["code"] for p in doc["problems"]] == ["aliases.syntax", "manifest.x"]
    only_warning = Plan("a", "b", (), (WARN,))
    assert json.loads(report.plan_json(only_warning))["valid"] is True
    assert json.loads(report.plan_json(only_warning))["action"] == "none"
    assert Severity.WARNING.value == "warning"


# --- one action: what the host does, told the same way everywhere ----------------------------


def test_a_host_that_restarts_for_a_reload_plans_a_restart_and_says_why() -> None:
    plan = Plan("a", "b", (USER, PIPE), ())
    decision = decide(plan, plan.action, "restart")
    decided = Plan("a", "b", (USER, PIPE), (), decision)

    assert decision.action is Action.RESTART
    assert report.plan_text(decided).splitlines()[-1] == (
        f"chasquid: restart (re-read by the 30 s reload; {WHY_RESTART_NOT_WAIT})"
    )
    doc = json.loads(report.plan_json(decided))
    assert (doc["action"], doc["needs"]) == ("restart", "reload")
    assert decision.action.done == "restarted chasquid"


def test_a_host_that_waits_for_the_reload_plans_the_reload() -> None:
    plan = Plan("a", "b", (USER,), ())
    decision = decide(plan, Action.RELOAD, "wait")

    assert decision == type(decision)(Action.RELOAD, ("re-read by the 30 s reload",))
    assert report.plan_text(Plan("a", "b", (USER,), (), decision)).splitlines()[-1] == (
        "chasquid: reload users and aliases (re-read by the 30 s reload)"
    )
    assert decision.action.done == "picked up by chasquid's periodic reload"


def test_an_interrupted_apply_decides_a_restart_and_files_alone_say_so() -> None:
    plan = Plan("a", "b", (), ())
    assert decide(plan, Action.NONE, "wait", interrupted=True).reasons == (WHY_INTERRUPTED,)
    by_hand = decide(plan, Action.RELOAD, "wait")
    assert by_hand.action is Action.RELOAD and "changed by hand" in by_hand.reasons[0]
    assert decide(plan, Action.NONE, "restart").action is Action.NONE
    assert Action.of("restart") is Action.RESTART and Action.of("bogus") is None
