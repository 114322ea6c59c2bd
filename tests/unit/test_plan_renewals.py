"""A certificate renewal in a plan: named with both fingerprints and both expiry dates."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from gitops_mail.apply.transaction import summary
from gitops_mail.core import report
from gitops_mail.core.plan.certs import CertFacts, with_renewals
from gitops_mail.core.plan.model import WHY_CERTS, Action, Change, Plan

OLD = CertFacts("mail.wac.tax", "ab12" * 16, datetime(2026, 12, 20, tzinfo=UTC))
NEW = CertFacts("mail.wac.tax", "cd34" * 16, datetime(2027, 3, 1, tzinfo=UTC))
RENEWED = (
    "certificate mail.wac.tax renewed: SHA256 ab12ab12… → cd34cd34…, expires 2027-03-01 "
    "(was 2026-12-20)"
)


def test_a_new_leaf_for_an_installed_certificate_is_a_renewal_that_restarts() -> None:
    plan = with_renewals(Plan("a", "a", (), ()), {OLD.name: OLD}, {NEW.name: NEW})

    assert report.plan_text(plan) == (
        f"Plan: a -> a\n  ~ {RENEWED}\nchasquid: restart ({WHY_CERTS})\n"
    )
    assert summary(plan) == RENEWED
    [change] = json.loads(report.plan_json(plan))["changes"]
    assert (change["op"], change["before"], change["after"]) == (
        "renewed",
        OLD.fingerprint,
        NEW.fingerprint,
    )
    assert f"| {RENEWED.split(': ', 1)[1]} |" in report.plan_markdown(plan)


def test_the_same_leaf_a_new_certificate_or_a_changed_source_is_no_renewal() -> None:
    empty = Plan("a", "a", (), ())
    assert with_renewals(empty, {OLD.name: OLD}, {OLD.name: OLD}) == empty
    assert with_renewals(empty, {}, {NEW.name: NEW}) == empty  # a first install: "added"
    moved = Change("certificate", "changed", NEW.name, "files a", "files b", Action.RESTART, "")
    plan = Plan("a", "b", (moved,), ())
    assert with_renewals(plan, {OLD.name: OLD}, {NEW.name: NEW}) == plan


def test_a_renewal_with_the_same_expiry_says_so_and_counts_beside_other_changes() -> None:
    same_day = CertFacts(NEW.name, NEW.fingerprint, OLD.not_after)
    alias = Change("alias", "added", "a@x", None, "b@y", Action.RELOAD, "reload")
    plan = with_renewals(Plan("a", "b", (alias,), ()), {OLD.name: OLD}, {NEW.name: same_day})

    assert summary(plan) == (
        "certificate mail.wac.tax renewed: SHA256 ab12ab12… → cd34cd34…, expires 2026-12-20 "
        "(as before), 1 alias added"
    )
