"""What ``status``, ``history`` and ``rollback`` say after an apply, and how they exit.

A failed tip is named as failed with its reason (``status`` exits 3), a
rollback that found nothing to undo says so (``rollback`` exits 3), and a
reason is kept whole in history while one-line displays shorten it and say
where the rest is.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("apply_fixtures")

from apply_fixtures import (  # noqa: E402 - after the assertion rewrite is registered
    ALIASES_PATH,
    BASE_ALIASES,
    DOMAIN,
    Sandbox,
)

pytest_plugins = ["apply_fixtures"]
pytestmark = [pytest.mark.netns, pytest.mark.chasquid]


def _loops(count: int) -> str:
    """Aliases that loop in pairs: ``count`` errors, a reason of some kilobytes."""
    return "".join(f"loop{i}a: loop{i}b\nloop{i}b: loop{i}a\n" for i in range(count))


def test_status_names_a_failed_tip_and_exits_3(sandbox: Sandbox) -> None:
    box = sandbox
    live = box.tip()
    bad = box.commit({ALIASES_PATH: BASE_ALIASES + _loops(8)}, "loops")
    assert box.gm("apply").code == 1

    done = box.run("status")

    assert done.code == 3, done.out + done.err
    lines = done.out.splitlines()
    [tip_line] = [line for line in lines if line.startswith("tip:")]
    assert tip_line.startswith(
        f"tip:      {bad[:7]} is invalid: revision {bad[:7]} is invalid (8 errors); "
        "nothing was changed:; chasquid/domains/example.test/aliases:"
    )
    assert tip_line.endswith(
        f"… (all of it: gitops-mail history --revision {bad[:7]}); live is {live[:7]}"
    )
    assert "(tip not applied yet)" not in done.out
    assert f"live:     {live[:7]} (the tip is not tried again until a new commit" in done.out
    doc = box.status()  # the JSON agrees, and so does its exit code
    assert (doc["live"], doc["pending"], doc["tip_failed"]["revision"]) == (live, False, bad)

    history = box.run("history", "--revision", bad[:7])  # the whole reason, every problem

    assert history.code == 0
    assert history.out.count("recursion limit exceeded") == 8
    assert f"loop7a@{DOMAIN}" in history.out
    [attempt] = [a for a in box.history() if a["revision"] == bad]
    assert attempt["reason"].count("\n") >= 8 and len(attempt["reason"]) > 300


def test_status_exits_0_again_once_a_good_commit_is_live(sandbox: Sandbox) -> None:
    box = sandbox
    box.commit({ALIASES_PATH: BASE_ALIASES + _loops(1)}, "a loop")
    box.gm("apply")
    assert box.run("status").code == 3
    fixed = box.commit({ALIASES_PATH: BASE_ALIASES + "sales: ana\n"}, "fixed")
    box.apply_ok()

    done = box.run("status")

    assert done.code == 0, done.out
    assert f"live:     {fixed[:7]}\n" in done.out and "tip:" not in done.out


def test_a_rollback_to_the_live_revision_says_it_did_not_roll_back(sandbox: Sandbox) -> None:
    box = sandbox
    live = box.tip()

    done = box.gm("rollback", "--to", live)

    assert (done.code, done.err) == (3, "")
    assert done.out == f"not rolled back: {live[:7]} is already live; nothing to undo\n"
    assert box.status()["live"] == live
