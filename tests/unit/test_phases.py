"""Phases: the wall time of each phase, and who hears of it as it ends."""

from __future__ import annotations

import pytest

from gitops_mail.apply.transaction import Phases


def test_each_phase_is_reported_as_it_ends_with_its_result() -> None:
    heard: list[tuple[str, float, str]] = []
    phases = Phases(report=lambda name, ms, result: heard.append((name, ms, result)))
    with phases.timed("stage"):
        assert heard == []
    with pytest.raises(OSError, match="disk full"), phases.timed("swap"):
        raise OSError("disk full")
    assert [(name, result) for name, _, result in heard] == [("stage", "ok"), ("swap", "error")]
    assert [ms for _, ms, _ in heard] == [phases.ms["stage"], phases.ms["swap"]]
    assert all(ms >= 0 for ms in phases.ms.values())


def test_without_a_listener_phases_only_keep_their_times() -> None:
    phases = Phases()
    with phases.timed("read"):
        pass
    assert list(phases.ms) == ["read"]
