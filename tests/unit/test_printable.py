"""Names from the repo are printed with their control characters escaped, everywhere."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_mail import logs
from gitops_mail.core import report
from gitops_mail.core.plan.model import Action, Change, Plan
from gitops_mail.core.printable import CONTROLS, json_text, shown, shown_lines
from gitops_mail.core.problems import error, warning

FORGED = "docs\nremote: applied 0000000: restart, probes ok"
ESCAPES = "e\x1b[2K\x1b[1Avil\x9b31m\u202etxt.exe"
# Every character that must never reach a terminal raw.
RAW = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]] + list(
    "\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def no_raw_control(text: str) -> bool:
    return not any(char in text for char in RAW if char != "\n")


@pytest.mark.parametrize("char", RAW)
def test_every_control_character_becomes_an_escape(char: str) -> None:
    out = shown(f"a{char}b")
    assert out.startswith("a\\") and out.endswith("b")
    assert char not in out


def test_the_escapes_are_the_familiar_ones() -> None:
    assert shown(FORGED) == "docs\\nremote: applied 0000000: restart, probes ok"
    assert shown(ESCAPES) == "e\\x1b[2K\\x1b[1Avil\\x9b31m\\u202etxt.exe"
    assert shown("a\tb\rc\x00d\x7f") == "a\\tb\\rc\\x00d\\x7f"


def test_letters_of_any_script_and_backslashes_stay() -> None:
    text = "ñandú@exämple.com 日本語 \\n émoji 😀 \u2018quotes\u2019 \u00a0nbsp"
    assert shown(text) == text


@given(st.text())
def test_shown_is_one_line_with_no_control_character(text: str) -> None:
    out = shown(text)
    assert CONTROLS.search(out) is None
    assert len(out.splitlines()) <= 1


@given(st.text())
def test_shown_lines_keeps_only_the_line_breaks(text: str) -> None:
    out = shown_lines(text)
    assert out.count("\n") == text.count("\n")
    assert all(CONTROLS.search(line) is None for line in out.split("\n"))


@given(st.recursive(st.none() | st.text() | st.integers(), lambda c: st.lists(c, max_size=3)))
def test_json_text_means_the_same_and_shows_nothing_raw(doc: object) -> None:
    text = json_text({"doc": doc, FORGED: ESCAPES})
    assert json.loads(text) == {"doc": doc, FORGED: ESCAPES}
    assert no_raw_control(text)


def test_the_console_log_renderer_escapes_what_it_would_write_raw() -> None:
    event = {"event": f"event {FORGED}", "exception": f"Traceback\n  {ESCAPES}", "n": 1}
    out = logs.escape_controls(None, "info", dict(event))
    assert out == {
        "event": f"event {shown(FORGED)}",
        "exception": f"Traceback\n  {shown(ESCAPES)}",
        "n": 1,
    }


def test_logs_escapes_the_same_characters_as_printable() -> None:
    for code in range(0x3000):
        char = chr(code)
        assert re.sub(logs.CONTROLS, logs._escaped, char) == shown(char), hex(code)


# --- the formatters ------------------------------------------------------------------


def forged_plan() -> Plan:
    changes = (
        Change("alias", "added", FORGED, None, ESCAPES, Action.RELOAD, "r", note=FORGED),
        Change("user", "removed", ESCAPES, FORGED, None, Action.RELOAD, "r"),
    )
    problems = (
        error(FORGED, 1, "layout.bad-path", f"bad {ESCAPES}", f"hint {FORGED}"),
        warning(ESCAPES, None, "x.y", FORGED),
    )
    return Plan("abc1234", "def5678", changes, problems)


def assert_no_forged_line(text: str) -> None:
    assert no_raw_control(text), text
    assert not any(line.lstrip().startswith("remote: applied") for line in text.splitlines())


def test_problem_lines_keep_each_name_on_its_line() -> None:
    problem = error(FORGED, 2, "layout.bad-path", f"component {ESCAPES}", f"rename {FORGED}")
    assert problem.format() == (
        "docs\\nremote: applied 0000000: restart, probes ok:2: error: component "
        "e\\x1b[2K\\x1b[1Avil\\x9b31m\\u202etxt.exe\n"
        "    hint: rename docs\\nremote: applied 0000000: restart, probes ok"
    )
    assert problem.message == f"component {ESCAPES}"  # the data keeps the real name


@pytest.mark.parametrize(
    "render",
    [report.plan_text, report.plan_markdown, report.plan_json],
    ids=["text", "markdown", "json"],
)
def test_plans_in_every_format_escape_names(render) -> None:
    text = render(forged_plan())
    assert_no_forged_line(text)
    assert "docs\\nremote: applied" in text or "docs\\\\nremote: applied" in text


def test_problem_reports_escape_names() -> None:
    problems = list(forged_plan().problems)
    assert_no_forged_line(report.problems_text(problems, "main (abc1234)"))
    text = report.problems_json(problems, "main (abc1234)", None)
    assert_no_forged_line(text)
    assert json.loads(text)["problems"][1]["path"] == ESCAPES
