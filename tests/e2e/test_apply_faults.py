"""Bad revisions and a hostile host: every failure leaves the live server as it was.

After each failed apply the live config dir is byte-identical (contents,
modes, owners) to before, chasquid still delivers a real message, and
``history`` records why.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

pytest.register_assert_rewrite("apply_fixtures")

from apply_fixtures import (  # noqa: E402 - after the assertion rewrite is registered
    ALIASES_PATH,
    BASE_ALIASES,
    CONF_PATH,
    MANIFEST_PATH,
    USERS_PATH,
    MakeSandbox,
    MountFn,
    Sandbox,
    fill,
    leaf_sha256,
)

pytest_plugins = ["apply_fixtures"]
pytestmark = [pytest.mark.netns, pytest.mark.chasquid]

RESTORED = "The server was restored to its previous configuration and passes its probes."
RESTORED_REASON = "the server was restored to its previous configuration and passes its probes"
AFTER_HINT = "    hint: `gitops-mail history` shows the details; fix it in a new commit\n"
FIX_HINT = "    hint: fix the problem in a new commit, or `git revert` the bad one\n"


def tip(box: Sandbox) -> str:
    return box.tip()[:7]


# --- refused before anything is touched ------------------------------------------------


def test_an_invalid_revision_is_refused_and_nothing_is_touched(sandbox: Sandbox) -> None:
    box = sandbox
    before, pid = box.tree(), box.pid()
    box.commit({ALIASES_PATH: BASE_ALIASES + "loop1: loop2\nloop2: loop1\n"}, "A loop")
    revision = tip(box)
    problem = (
        "chasquid/domains/example.test/aliases:2: error: alias loop: loop1@example.test -> "
        "loop2@example.test -> loop1@example.test: chasquid answers 451 to mail for these "
        "addresses (recursion limit exceeded)"
    )

    done = box.gm("apply")

    assert (done.code, done.out) == (1, "")
    assert done.err == (
        f"gitops-mail: error: revision {revision} is invalid (1 error); nothing was changed:\n"
        f"{problem}\n"
        "    hint: break the loop: one of these addresses must lead to a user, a pipe or a "
        "remote address\n"
        "    hint: fix the problems in a new commit, or `git revert` the bad one\n"
    )
    assert box.pid() == pid
    box.assert_untouched(  # history keeps the whole reason, the hint too
        before,
        "invalid",
        f"revision {revision} is invalid (1 error); nothing was changed:\n{problem}\n"
        "hint: break the loop: one of these addresses must lead to a user, a pipe or a "
        "remote address",
    )
    assert box.rcpt("loop1@example.test") == 550


def test_a_revision_chasquid_refuses_in_pre_flight_is_not_applied(sandbox: Sandbox) -> None:
    box = sandbox
    before, pid = box.tree(), box.pid()
    carol = b'users: {\n  key: "carol"\n  value: {\n    denied: {}\n  }\n}\n'
    box.commit(  # our rules allow a receive-only user for 1.13; the real chasquid is 1.11
        {USERS_PATH: box.users.ana + carol, MANIFEST_PATH: box.manifest(version="1.13")},
        "A receive-only user",
    )
    revision = tip(box)
    words = (
        "domains/example.test: error: proto: (line 17:5): unknown field: denied; "
        "domains/example.test/users: Error loading database: proto: (line 17:5): "
        "unknown field: denied"
    )

    done = box.gm("apply")

    assert (done.code, done.out) == (1, "")
    assert done.err == (
        f"gitops-mail: error: revision {revision} was not applied: chasquid's pre-flight "
        f"refused it: {words}; nothing was changed\n" + FIX_HINT
    )
    assert box.pid() == pid
    box.assert_untouched(before, "failed", f"chasquid's pre-flight refused it: {words}")
    assert (box.config_dir / ".gitops-mail" / "staging").exists() is False


# --- refused after the swap: restored -------------------------------------------------------


def test_probes_that_fail_after_the_swap_restore_the_server(sandbox: Sandbox) -> None:
    box = sandbox
    before = box.tree()
    old_leaf = leaf_sha256(box.fullchain)
    fullchain, key = box.new_cert("second")
    new_leaf = leaf_sha256(fullchain)
    # A restart command that does not restart: chasquid keeps serving the old certificate.
    box.write_host(service="command", restart_command=["/bin/true"])
    box.commit({MANIFEST_PATH: box.manifest(fullchain=fullchain, key=key)}, "New certificate")
    revision = tip(box)
    failure = "; ".join(
        f"{role}.certificate: serves certificate sha256 {old_leaf}, which is not on disk "
        f"(on disk: {new_leaf})"
        for role in ("smtp", "submission", "submission_tls")
    )

    done = box.gm("apply")

    assert (done.code, done.out) == (1, "")
    assert done.err == (
        f"gitops-mail: error: revision {revision} failed after it went live: probe failed: "
        f"{failure}. {RESTORED}\n" + AFTER_HINT
    )
    reason = f"probe failed: {failure}; {RESTORED_REASON}"  # whole, though long
    assert len(reason) > 300
    box.assert_untouched(before, "failed", reason)
    last = box.history()[0]
    assert (last["summary"], last["action"]) == ("1 certificate changed", "restart")
    assert {"swap", "restart", "probe", "restore", "restore-restart", "restore-probe"} <= set(
        last["phases_ms"]
    )
    assert leaf_sha256(box.config_dir / "certs/mail.example.test/fullchain.pem") == old_leaf


def test_a_failed_revision_that_adds_files_leaves_none_of_them(sandbox: Sandbox) -> None:
    # The restore must remove what the swap added (a new domain's files, a new
    # certificate's directory), not only put back what it replaced.
    box = sandbox
    before = box.tree()
    fullchain, key = box.new_cert("second")
    box.write_host(service="command", restart_command=["/bin/true"])
    box.commit(
        {
            MANIFEST_PATH: box.manifest(fullchain=fullchain, key=key),
            "chasquid/domains/new.test/aliases": "info: ana@example.test\n",
        },
        "New certificate and a new domain",
    )

    done = box.gm("apply")

    assert done.code == 1
    assert done.err.endswith(f"{RESTORED}\n" + AFTER_HINT)
    last = box.history()[0]
    assert last["summary"] == "1 domain added, 1 alias added, 1 certificate changed"
    box.assert_untouched(before, "failed", last["reason"])
    assert not (box.config_dir / "domains" / "new.test").exists()


def test_a_revision_that_makes_chasquid_exit_at_start_is_rolled_back(sandbox: Sandbox) -> None:
    box = sandbox
    before = box.tree()
    with socket.socket() as held:  # chasquid cannot listen where this socket is bound
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        box.commit({CONF_PATH: box.conf(smtp_address=f"127.0.0.1:{port}")}, "A taken port")
        revision = tip(box)

        done = box.gm("apply")

        words = f"Error listening: listen tcp 127.0.0.1:{port}: bind: address already in use"
        assert (done.code, done.out) == (1, "")
        head = (
            f"gitops-mail: error: revision {revision} failed after it went live: "
            f"chasquid logged: {words}; probe failed: smtp.connect: 127.0.0.1:{port} did not "
            "answer ([Errno 111] Connection refused); chasquid is not running: it exited "
            "after its restart; "
        )  # at once, not at the deadline (10 s): the probes saw it exit
        assert done.err.startswith(head), done.err
        assert done.err.endswith(f"after its restart. {RESTORED}\n" + AFTER_HINT), done.err
        last = box.history()[0]
        assert last["reason"].startswith(f"chasquid logged: {words}; probe failed: ")
        assert last["reason"].endswith("exited after its restart; " + RESTORED_REASON)  # whole
        box.assert_untouched(before, "failed", last["reason"])
        assert box.status()["chasquid_running"] is True


# --- an unwritable or full host -------------------------------------------------------------


def test_an_unwritable_config_dir_is_a_clear_error(sandbox: Sandbox, mount: MountFn) -> None:
    box = sandbox
    before = box.tree()
    work = box.config_dir / ".gitops-mail"
    box.commit({ALIASES_PATH: BASE_ALIASES + "sales: ana\n"}, "Add sales@")
    revision = tip(box)

    for read_only in (box.config_dir, box.config_dir.parent):  # the dir, or all of /etc
        mount("--bind", "-o", "ro", read_only, read_only)
        done = box.gm("apply")
        mount.undo(read_only)

        message = f"cannot stage {work}/staging: Read-only file system"
        assert (done.code, done.out) == (1, "")
        assert done.err == (
            f"gitops-mail: error: {message}\n"
            "    hint: the filesystem is mounted read-only: remount it read-write\n"
        )
        box.assert_untouched(before, "failed", message)

    done = box.gm("apply")
    assert done.code == 0, done.err
    assert done.out.endswith(f"applied {revision}: restarted chasquid, probes ok\n")


def test_an_unwritable_state_dir_is_a_clear_error(sandbox: Sandbox, mount: MountFn) -> None:
    box = sandbox
    before, pid = box.tree(), box.pid()
    history = box.history()
    box.commit({ALIASES_PATH: BASE_ALIASES + "sales: ana\n"}, "Add sales@")

    mount("--bind", "-o", "ro", box.state_dir, box.state_dir)
    done = box.gm("apply")

    assert (done.code, done.out) == (1, "")
    assert done.err == (
        f"gitops-mail: error: cannot open the state lock {box.state_dir}/lock: "
        "Read-only file system\n"
        "    hint: check state_dir in the host settings: it must be a directory this user "
        "can write\n"
    )
    assert box.tree() == before
    assert box.history() == history
    assert box.pid() == pid
    box.mail_works()
    mount.undo(box.state_dir)


def test_a_full_disk_is_a_clear_error_and_loses_nothing(
    tmp_path: Path, mount: MountFn, make_sandbox: MakeSandbox
) -> None:
    (tmp_path / "small").mkdir()
    small = mount("-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", tmp_path / "small")
    box = make_sandbox(config_dir=small / "chasquid")
    box.apply_ok()
    before = box.tree()
    box.commit({ALIASES_PATH: BASE_ALIASES + "sales: ana\n"}, "Add sales@")
    revision = tip(box)
    filler = fill(small)

    done = box.gm("apply")

    message = (
        f"cannot stage {small}/chasquid/.gitops-mail/staging/domains/example.test/aliases: "
        "No space left on device"
    )
    assert (done.code, done.out) == (1, "")
    assert done.err == (
        f"gitops-mail: error: {message}\n"
        f"    hint: the filesystem is full: free space there (df -h {small}/chasquid)\n"
    )
    box.assert_untouched(before, "failed", message)

    filler.unlink()
    done = box.gm("apply")
    assert done.code == 0, done.err
    assert done.out.endswith(f"applied {revision}: restarted chasquid, probes ok\n")
    box.mail_works(to="sales@example.test", mailbox="ana@example.test")
