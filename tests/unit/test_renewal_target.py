"""Which daemon passes renew certificates on the live revision (``daemon.renewals.target``)."""

from __future__ import annotations

import pytest

from gitops_mail.apply.store import Attempt, Record
from gitops_mail.daemon.renewals import target
from gitops_mail.daemon.triggers import Job
from gitops_mail.daemon.worker import GIVEN_UP

LIVE, TIP = "a" * 40, "b" * 40


def record(tip_result: str | None) -> Record:
    history = (Attempt(LIVE, "t0", "applied"),)
    if tip_result is not None:
        history = (Attempt(TIP, "t1", tip_result), *history)
    return Record(LIVE, history)


@pytest.mark.parametrize(
    ("tip", "tip_result", "job", "expected"),
    [
        (LIVE, None, Job(("certificate",)), LIVE),  # the tip is live: renew it
        (TIP, "failed", Job(("certificate",)), LIVE),  # a broken tip is not retried
        (TIP, "invalid", Job(("certificate",)), LIVE),
        (TIP, "failed", Job(("start",)), LIVE),  # a renewal missed while down
        (TIP, None, Job(("certificate",)), None),  # a tip not tried yet: apply it
        (TIP, "error", Job(("certificate",)), None),  # a transient error: retry the tip
        (TIP, "failed", Job(("certificate", "SIGUSR1"), force=True), None),  # asked for
        (LIVE, None, Job(("start",)), None),  # the start pass looks at everything itself
        (LIVE, None, Job(("ref",)), None),
        (TIP, "failed", Job(("poll",)), None),
    ],
)
def test_a_renewal_applies_the_live_revision_unless_the_tip_is_due(
    tip: str, tip_result: str | None, job: Job, expected: str | None
) -> None:
    assert target(record(tip_result), tip, job, GIVEN_UP) == expected


def test_nothing_live_nothing_to_renew() -> None:
    assert target(Record(None, ()), TIP, Job(("certificate",)), GIVEN_UP) is None
