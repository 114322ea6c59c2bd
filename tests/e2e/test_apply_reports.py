"""What ``status``, ``history`` and ``rollback`` say after an apply, and how they exit.

A failed tip is named as failed with its reason (``status`` exits 3), a
rollback that found nothing to undo says so (``rollback`` exits 3), and a
reason is kept whole in history while one-line displays shorten it and say
where the rest is.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from cryptography import x509

pytest.register_assert_rewrite("apply_fixtures")

from apply_fixtures import (  # noqa: E402 - after the assertion rewrite is registered
    ALIASES_PATH,
    BASE_ALIASES,
    DOMAIN,
    Sandbox,
    leaf_sha256,
)
from apply_host import HOSTNAME  # noqa: E402

pytest_plugins = ["apply_fixtures"]
pytestmark = [pytest.mark.netns, pytest.mark.chasquid]

CERTS_WHY = "chasquid: restart (chasquid loads certificates only at start)\n"


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
        f"tip:      {bad[:7]} is invalid (8 errors); "
        "nothing was changed: chasquid/domains/example.test/aliases:"
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


# --- a certificate renewal, told like any change ---------------------------------------------


def _expiry(fullchain: Path) -> str:
    return f"{x509.load_pem_x509_certificate(fullchain.read_bytes()).not_valid_after_utc:%Y-%m-%d}"


def _renew_in_place(box: Sandbox, ca: trustme.CA, until: datetime) -> None:
    """New files where the source is, as acme.sh and certbot renew: same name, new leaf."""
    leaf = ca.issue_cert(HOSTNAME, "127.0.0.1", common_name=HOSTNAME, not_after=until)
    box.fullchain.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(box.privkey))


def test_a_renewal_is_named_by_plan_apply_and_history(
    sandbox: Sandbox, test_ca: tuple[trustme.CA, Path]
) -> None:
    box = sandbox
    revision, old, was = box.tip()[:7], leaf_sha256(box.fullchain), _expiry(box.fullchain)
    _renew_in_place(box, test_ca[0], datetime(2027, 3, 1, 12, tzinfo=UTC))
    new = leaf_sha256(box.fullchain)
    renewed = (
        f"certificate {HOSTNAME} renewed: SHA256 {old[:8]}… → {new[:8]}…, expires 2027-03-01 "
        f"(was {was})"
    )
    plan = f"Plan: {revision} -> {revision}\n  ~ {renewed}\n" + CERTS_WHY

    live = box.run("plan", "--live")
    dry = box.gm("apply", "--dry-run")
    done = box.gm("apply")

    assert (live.code, live.err) == (2, "")
    assert f"  ~ {renewed}\n" in live.out and live.out.endswith(CERTS_WHY)
    assert (dry.code, dry.err) == (0, "")
    assert dry.out == plan + f"would apply {revision} ({renewed}); pre-flight passed\n"
    assert (done.code, done.err) == (0, "")
    assert done.out == plan + f"applied {revision}: restarted chasquid, probes ok\n"
    last = box.history()[0]
    assert (last["result"], last["action"], last["summary"]) == ("applied", "restart", renewed)
    assert f" {revision} applied (restart): {renewed} [" in box.run("history").out
    after = box.run("plan", "--live")
    assert (after.code, "renewed" in after.out) == (0, False)  # installed: nothing pending


def test_status_lists_each_certificate_and_whether_chasquid_serves_it(
    sandbox: Sandbox, test_ca: tuple[trustme.CA, Path]
) -> None:
    box = sandbox
    leaf, until = leaf_sha256(box.fullchain), _expiry(box.fullchain)
    issuer = x509.load_pem_x509_certificate(box.fullchain.read_bytes()).issuer

    doc = box.status()

    [cert] = doc["certificates"]
    assert (cert["name"], cert["names"], cert["fingerprint"]) == (HOSTNAME, [HOSTNAME], leaf)
    assert cert["issuer"] == issuer.rfc4514_string()  # the test CA has no common name
    assert cert["source"] == f"files {box.fullchain}, {box.privkey}"
    assert cert["not_after"].startswith(until) and cert["served_equals_disk"] is True
    assert len(cert["served_on"]) == 3
    text = box.run("status").out
    assert f"cert:     {HOSTNAME}: {HOSTNAME}; issuer " in text
    assert f"; expires {until} (expires in " in text
    assert "served on 25, 587 and 465: as on disk\n" in text and "warning" not in text

    # On disk, a certificate chasquid has not loaded (and one that expires soon).
    soon = datetime.now(UTC) + timedelta(days=5, hours=1)
    _renew_in_place(box, test_ca[0], soon)
    installed = box.config_dir / "certs" / HOSTNAME / "fullchain.pem"
    installed.write_bytes(box.fullchain.read_bytes())

    doc = box.status()
    text = box.run("status").out

    assert doc["certificates"][0]["served_equals_disk"] is False
    assert f"NOT served as on disk: chasquid serves SHA256 {leaf[:8]}…; `gitops-mail apply` " in (
        text
    )
    assert f"cert:     warning: {HOSTNAME} expires in 5 days ({soon:%Y-%m-%d}): renew it" in text
