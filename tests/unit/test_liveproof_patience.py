"""When a waiting probe asks the daemon for a newer revision: ``liveproof._Patience``."""

from __future__ import annotations

import pytest

from gitops_mail.apply import liveproof


def test_nothing_is_asked_while_chasquid_may_still_be_starting() -> None:
    asked: list[str] = []
    patience = liveproof._Patience(lambda: asked.append("x") or "b" * 40)

    assert (patience(), asked, patience.found) == (False, [], None)


def test_without_a_newer_callable_a_probe_never_stops_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(liveproof, "PATIENCE_S", 0.0)

    assert liveproof._Patience(None)() is False


def test_once_patience_is_over_the_first_newer_revision_ends_the_wait_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(liveproof, "PATIENCE_S", 0.0)
    monkeypatch.setattr(liveproof, "ASK_EVERY_S", 0.0)
    answers = iter([None, None, "b" * 40, None])
    asked: list[str | None] = []

    def newer() -> str | None:
        asked.append(answer := next(answers))
        return answer

    patience = liveproof._Patience(newer)

    assert [patience() for _ in range(5)] == [False, False, True, True, True]
    assert (patience.found, asked) == ("b" * 40, [None, None, "b" * 40])  # not asked again
