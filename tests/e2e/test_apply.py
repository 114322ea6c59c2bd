"""``gitops-mail apply`` on a real host: first apply, changes, no-ops, drift, rollback.

Each test runs the command line as a child process against a bare conf repo
and a real chasquid under gitops-mail's supervisor (``apply_fixtures``), and
proves the result with real SMTP: a message through submission (STARTTLS,
AUTH PLAIN) delivered to a mailbox, or RCPT answers on the SMTP port.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

pytest.register_assert_rewrite("apply_fixtures")

from apply_fixtures import (  # noqa: E402 - after the assertion rewrite is registered
    ALIASES_PATH,
    ANA,
    BASE_ALIASES,
    BOB,
    CONF_PATH,
    DOMAIN,
    USERS_PATH,
    MakeSandbox,
    Sandbox,
    leaf_sha256,
)

pytest_plugins = ["apply_fixtures"]
pytestmark = [pytest.mark.netns, pytest.mark.chasquid]

CHASQUID_GID = grp.getgrnam("chasquid").gr_gid
RESTART_WHY = (
    "chasquid: restart (chasquid reads its list of domains only at start; chasquid reads "
    "chasquid.conf only at start; chasquid loads certificates only at start)\n"
)
RELOAD_WHY = (
    "chasquid: reload users and aliases (users and aliases of a running domain are re-read "
    "by chasquid's 30 s reload)\n"
)
RESTART_FOR_RELOAD = (
    "chasquid: restart (users and aliases of a running domain are re-read by chasquid's 30 s "
    "reload; this host restarts chasquid rather than wait for its reload (reload_strategy: "
    "restart))\n"
)
CERT_DIR = "certs/mail.example.test"


def first_plan(box: Sandbox, revision: str) -> str:
    return (
        f"Plan: nothing -> {revision[:7]}\n"
        "  + domain example.test\n"
        "  + config chasquid/chasquid.conf\n"
        "  + user ana@example.test -> scrypt\n"
        "  + alias postmaster@example.test -> ana@example.test\n"
        f"  + certificate mail.example.test -> files {box.fullchain}, {box.privkey}\n"
        "  + manifest domains.example.test -> {}\n"
        "  + manifest version -> 1\n"
        "  + record example.test MX -> 10 mail.example.test.\n" + RESTART_WHY
    )


def pkcs8(path: Path) -> bytes:
    """The private key in ``path`` as PKCS#8 PEM, the form gitops-mail installs."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def managed_files(box: Sandbox) -> dict[str, tuple[str, int, int, int, bytes]]:
    """What the base revision installs: path -> (kind, mode, uid, gid, bytes)."""
    group = CHASQUID_GID
    return {
        CERT_DIR + "/fullchain.pem": ("file", 0o644, 0, group, box.fullchain.read_bytes()),
        CERT_DIR + "/privkey.pem": ("file", 0o640, 0, group, pkcs8(box.privkey)),
        "chasquid.conf": ("file", 0o644, 0, 0, box.conf().encode()),
        f"domains/{DOMAIN}/aliases": ("file", 0o644, 0, group, BASE_ALIASES.encode()),
        f"domains/{DOMAIN}/users": ("file", 0o640, 0, group, box.users.ana),
    }


def tip(box: Sandbox) -> str:
    return box.tip()


# --- the first apply ------------------------------------------------------------------


def test_first_apply_onto_an_empty_config_dir_delivers_mail(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox()
    revision = tip(box)
    assert os.listdir(box.config_dir) == []

    done = box.gm("apply")

    assert (done.code, done.err) == (0, "")
    assert done.out == (
        first_plan(box, revision) + f"applied {revision[:7]}: restarted chasquid, probes ok\n"
    )
    directory = ("dir", 0o755, 0, 0, b"")
    assert box.tree() == {
        ".": directory,
        "certs": directory,
        CERT_DIR: directory,
        "domains": directory,
        f"domains/{DOMAIN}": directory,
        **managed_files(box),
    }
    box.mail_works(to=f"postmaster@{DOMAIN}", mailbox=ANA)
    status = box.status()
    assert (status["live"], status["pending"], status["chasquid_running"]) == (
        revision,
        False,
        True,
    )
    assert status["drift"] == {"modified": [], "missing": [], "foreign": []}
    [attempt] = box.history()
    assert (attempt["revision"], attempt["result"], attempt["action"]) == (
        revision,
        "applied",
        "restart",
    )
    assert attempt["summary"] == (
        "1 domain added, 1 config setting added, 1 user added, 1 alias added, 1 certificate added, "
        "2 manifest settings added, 1 record added"
    )
    assert set(attempt["phases_ms"]) == {
        *("read", "validate", "render", "compare", "stage", "preflight"),
        *("swap", "restart", "probe"),
    }


def test_first_apply_onto_debians_config_dir_keeps_the_packages_files(
    make_sandbox: MakeSandbox,
) -> None:
    box = make_sandbox(debian=True)
    package = box.tree()
    foreign = ["README", "certs/README.certs", "hooks/post-data"]

    box.apply_ok()

    tree = box.tree()
    for path in ["certs", "hooks", *foreign]:
        assert tree[path] == package[path], path
    for path, entry in managed_files(box).items():
        assert tree[path] == entry, path
    assert tree["hooks/post-data"][1] == 0o755
    box.mail_works()  # through Debian's example hooks/post-data
    status = box.status()
    assert status["drift"] == {"modified": [], "missing": [], "foreign": foreign}
    assert status["chasquid_running"] is True
    done = box.run("status")
    assert done.out.splitlines()[-3:] == [f"drift:    {path}: not managed" for path in foreign]
    # Debian's own chasquid.conf was taken over; its original is kept in the work dir.
    [kept] = (box.config_dir / ".gitops-mail" / "adopted").glob("*/chasquid.conf")
    assert kept.read_bytes() == package["chasquid.conf"][4]


# --- changes ------------------------------------------------------------------------------


def test_an_alias_change_restarts_chasquid_and_the_alias_receives_mail(sandbox: Sandbox) -> None:
    box = sandbox
    base, pid = tip(box), box.pid()
    assert box.rcpt(f"sales@{DOMAIN}") == 550
    revision = box.commit({ALIASES_PATH: BASE_ALIASES + "sales: ana\n"}, "Add sales@")

    done = box.gm("apply")

    assert (done.code, done.err) == (0, "")
    assert done.out == (
        f"Plan: {base[:7]} -> {revision[:7]}\n"
        f"  + alias sales@{DOMAIN} -> {ANA}\n"
        + RESTART_FOR_RELOAD
        + f"applied {revision[:7]}: restarted chasquid, probes ok\n"
    )
    assert box.pid() != pid
    last = box.history()[0]
    assert (last["result"], last["action"], last["summary"]) == (
        "applied",
        "restart",
        "1 alias added",
    )
    assert {"restart", "probe"} <= set(last["phases_ms"])
    box.mail_works(to=f"sales@{DOMAIN}", mailbox=ANA)


def test_with_reload_strategy_wait_the_alias_goes_live_without_a_restart(
    make_sandbox: MakeSandbox,
) -> None:
    box = make_sandbox(chasquid_args=["-testing__reload_every=1s"])
    box.write_host(reload_strategy="wait")
    box.apply_ok()
    pid = box.pid()
    revision = box.commit({ALIASES_PATH: BASE_ALIASES + "sales: ana\n"}, "Add sales@")

    done = box.gm("apply")

    assert (done.code, done.err) == (0, "")
    assert done.out.endswith(
        RELOAD_WHY + f"applied {revision[:7]}: picked up by chasquid's periodic reload, probes ok\n"
    )
    assert box.pid() == pid
    last = box.history()[0]
    assert (last["result"], last["action"]) == ("applied", "reload")
    assert "restart" not in last["phases_ms"]
    box.mail_works(to=f"sales@{DOMAIN}", mailbox=ANA)


def test_dry_run_prints_the_plan_and_changes_nothing(sandbox: Sandbox) -> None:
    box = sandbox
    base, pid, before = tip(box), box.pid(), box.tree()
    record = (box.state_dir / "state.json").read_bytes()
    revision = box.commit({ALIASES_PATH: BASE_ALIASES + "sales: ana\n"}, "Add sales@")

    done = box.gm("apply", "--dry-run")

    assert (done.code, done.err) == (0, "")
    assert done.out == (
        f"Plan: {base[:7]} -> {revision[:7]}\n"
        f"  + alias sales@{DOMAIN} -> {ANA}\n"
        + RESTART_FOR_RELOAD
        + f"would apply {revision[:7]} (1 alias added); pre-flight passed\n"
    )
    assert box.tree() == before
    assert (box.state_dir / "state.json").read_bytes() == record
    assert box.pid() == pid
    assert box.rcpt(f"sales@{DOMAIN}") == 550
    assert os.listdir(box.config_dir / ".gitops-mail") == ["checkpoint"]


def test_a_revision_already_live_is_a_no_op(sandbox: Sandbox) -> None:
    box = sandbox
    revision, pid, before = tip(box), box.pid(), box.tree()

    done = box.gm("apply")

    assert (done.code, done.out, done.err) == (
        0,
        f"{revision[:7]} is already live; nothing to do\n",
        "",
    )
    assert box.pid() == pid
    assert box.tree() == before
    latest, first = box.history()
    assert (latest["revision"], latest["result"], latest["summary"]) == (
        revision,
        "unchanged",
        "no change",
    )
    assert first["result"] == "applied"
    box.mail_works()


def test_a_renewed_certificate_is_installed_when_the_live_revision_is_applied_again(
    sandbox: Sandbox,
) -> None:
    box = sandbox
    revision, pid = tip(box), box.pid()
    renewed_chain, renewed_key = box.new_cert("renewed")
    shutil.copy(renewed_chain, box.fullchain)  # the source files change in place,
    shutil.copy(renewed_key, box.privkey)  # as acme.sh and certbot renewals do

    done = box.gm("apply")

    assert done.code == 0, done.err
    assert done.out.endswith(f"applied {revision[:7]}: restarted chasquid, probes ok\n")
    assert box.pid() != pid
    assert hashlib.sha256(box.served_leaf()).hexdigest() == leaf_sha256(renewed_chain)
    assert box.gm("apply").out == f"{revision[:7]} is already live; nothing to do\n"


# --- drift ----------------------------------------------------------------------------------


def test_drift_is_shown_and_apply_restores_managed_files_only(sandbox: Sandbox) -> None:
    box = sandbox
    revision = tip(box)
    aliases = box.config_dir / "domains" / DOMAIN / "aliases"
    aliases.write_text(BASE_ALIASES + "evil: ana\n")
    os.unlink(box.config_dir / "domains" / DOMAIN / "users")
    (box.config_dir / "notes.txt").write_text("the admin's own notes\n")

    status = box.run("status")
    assert (status.code, status.err) == (0, "")
    assert status.out.splitlines()[-3:] == [
        f"drift:    domains/{DOMAIN}/aliases: changed by hand",
        f"drift:    domains/{DOMAIN}/users: deleted by hand",
        "drift:    notes.txt: not managed",
    ]
    plan = box.run("plan", "--live", "--repo", str(box.origin.path), "--rev", "main")
    assert (plan.code, plan.err) == (2, "")
    assert plan.out.startswith(f"Plan: live {box.config_dir} -> {revision[:7]}\n")
    assert f"  - alias evil@{DOMAIN} (was {ANA})\n" in plan.out
    assert f"  + user {ANA} -> scrypt\n" in plan.out

    done = box.gm("apply")

    assert (done.code, done.err) == (0, "")
    assert done.out.endswith(f"applied {revision[:7]}: restarted chasquid, probes ok\n")
    assert aliases.read_text() == BASE_ALIASES
    assert (box.config_dir / "notes.txt").read_text() == "the admin's own notes\n"
    assert box.status()["drift"] == {"modified": [], "missing": [], "foreign": ["notes.txt"]}
    assert box.rcpt(f"evil@{DOMAIN}") == 550
    box.mail_works()


# --- rollback and history ----------------------------------------------------------------------


def test_rollback_makes_the_previous_revision_live_again(sandbox: Sandbox) -> None:
    box = sandbox
    base = tip(box)
    first = box.commit({ALIASES_PATH: BASE_ALIASES + "sales: ana\n", USERS_PATH: box.users.ana_bob})
    box.apply_ok()
    second = box.commit({ALIASES_PATH: BASE_ALIASES + "help: ana\n", USERS_PATH: box.users.ana})
    box.apply_ok()
    assert [box.rcpt(a) for a in (f"sales@{DOMAIN}", f"help@{DOMAIN}", BOB)] == [550, 250, 550]

    done = box.gm("rollback")

    assert (done.code, done.err) == (0, "")
    assert done.out == (
        f"rolled back: applied {first[:7]}: restarted chasquid, probes ok\n"
        "note: the next push (or `gitops-mail apply`) applies the branch tip again; "
        "`git revert` the bad commit to make the rollback stick\n"
    )
    assert [box.rcpt(a) for a in (f"sales@{DOMAIN}", f"help@{DOMAIN}", BOB)] == [250, 550, 250]
    assert box.status()["live"] == first

    done = box.gm("rollback", "--to", base[:10])

    assert done.code == 0, done.err
    assert [box.rcpt(a) for a in (f"sales@{DOMAIN}", f"help@{DOMAIN}", BOB)] == [550, 550, 550]
    assert box.tree()[CONF_PATH.removeprefix("chasquid/")][4] == box.conf().encode()
    assert [(a["revision"], a["result"]) for a in box.history()] == [
        (base, "applied"),
        (first, "applied"),
        (second, "applied"),
        (first, "applied"),
        (base, "applied"),
    ]
    box.mail_works()


def test_no_op_applies_leave_one_entry_not_one_each(sandbox: Sandbox) -> None:
    """History has one entry per commit and outcome; the 50-entry bound is the store's
    (test_statestore)."""
    box = sandbox
    revision = tip(box)
    before = box.history()
    for _ in range(5):  # no-op applies, cheap; in this process
        done = box.run("apply")
        assert done.out == f"{revision[:7]} is already live; nothing to do\n"

    history = box.history()

    assert history[1:] == before
    assert (history[0]["revision"], history[0]["result"]) == (revision, "unchanged")
    assert json.loads((box.state_dir / "state.json").read_text())["applied"] == revision
    text = box.run("history")
    assert len(text.out.splitlines()) == len(history)
