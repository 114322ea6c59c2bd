"""``gitops-mail daemon`` on a real host: pushes to a bare repo become live.

Each test runs the daemon as a child process (as systemd would) against the
sandbox of ``apply_fixtures``: a bare conf repo with a clone that pushes to it,
and a real chasquid under gitops-mail's supervisor. Results are read from
``history`` and ``daemon.json``, proven with real SMTP, and the daemon's own
JSON log events. Nothing waits a fixed time: every wait polls with a deadline.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("apply_fixtures", "daemon_fixtures")

from apply_fixtures import (  # noqa: E402 - after the assertion rewrite is registered
    BASE_ALIASES,
    BOB,
    DOMAIN,
    USERS_PATH,
    MakeSandbox,
    Sandbox,
    leaf_sha256,
    poll,
)
from daemon_fixtures import SALES, StartDaemon, aliases, attempt  # noqa: E402

from gitops_mail.cli import daemon as daemon_command  # noqa: E402
from gitops_mail.daemon import status as daemonstatus  # noqa: E402
from gitops_mail.errors import GitopsMailError  # noqa: E402
from gitops_mail.host import settings as hostsettings  # noqa: E402

pytest_plugins = ["apply_fixtures", "daemon_fixtures"]
pytestmark = [pytest.mark.netns, pytest.mark.chasquid]


def receive(sock: socket.socket, wanted: str) -> list[str]:
    """Datagrams from the daemon until one holds ``wanted``; every field seen."""
    fields: list[str] = []
    sock.settimeout(20)
    while wanted not in fields:
        fields += sock.recv(4096).decode().split("\n")
    return fields


# --- start, systemd, stop -------------------------------------------------------------


def test_start_applies_the_tip_notifies_systemd_and_sigterm_exits_0(
    make_sandbox: MakeSandbox, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    box = make_sandbox()  # the base revision is pushed, nothing is live yet
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        daemon = start_daemon(box, NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_USEC="100000")

        fields = receive(sock, "READY=1")

        assert attempt(box, box.tip())["action"] == "restart"
        assert f"STATUS=live {box.tip()[:7]}; last pass: {box.tip()[:7]} applied" in fields
        box.mail_works()
        assert "WATCHDOG=1" in receive(sock, "WATCHDOG=1")
        pid = daemon.child.pid
        assert daemonstatus.daemon_pid(box.state_dir) == pid
        assert daemonstatus.status_lines(box.state_dir) == [
            f"daemon:   running (pid {pid}), watching {box.origin.path} main",
            f"daemon:   idle, tip seen {box.tip()[:7]}",
            f"daemon:   last pass applied {box.tip()[:7]}: restarted chasquid, probes ok",
        ]

        assert daemon.stop() == 0
        assert "STOPPING=1" in receive(sock, "STOPPING=1")
    assert not (box.state_dir / "daemon.pid").exists()
    assert daemon.status()["state"] == "stopped"
    assert daemonstatus.status_lines(box.state_dir)[0].startswith("daemon:   not running (last")
    assert [e["event"] for e in daemon.events()][-2:] == ["daemon.stopping", "daemon.stop"]


def test_a_second_daemon_for_the_same_state_dir_is_refused(
    sandbox: Sandbox, start_daemon: StartDaemon
) -> None:
    first = start_daemon(sandbox)
    first.ready()
    second = start_daemon(sandbox)

    assert second.child.wait(timeout=30) == 1
    assert (
        f"a gitops-mail daemon already runs for {sandbox.state_dir} (pid {first.child.pid})"
        in second.log.read_text()
    )
    assert first.stop() == 0


# --- pushes -----------------------------------------------------------------------------


def test_a_push_goes_live_and_a_pushed_revert_brings_the_old_state_back(
    sandbox: Sandbox, start_daemon: StartDaemon
) -> None:
    box = sandbox
    daemon = start_daemon(box, NOTIFY_SOCKET="@gitops-mail-test-" + os.urandom(4).hex())
    daemon.ready()
    assert box.rcpt(SALES) == 550

    added = box.commit({**aliases("sales: ana\n"), USERS_PATH: box.users.ana_bob}, "sales, bob")
    done = attempt(box, added)

    assert [box.rcpt(SALES), box.rcpt(BOB)] == [250, 250]
    ended = lambda: [e for e in daemon.events("reconcile.end") if e["revision"] == added]  # noqa: E731
    poll(ended, 10, "the pass's reconcile.end event (logged after history is written)")
    [end] = ended()
    assert (end["action"], done["action"]) == ("restart", "restart")  # one action, told alike
    assert end["message"] == f"applied {added[:7]}: restarted chasquid, probes ok"
    phases = [e for e in daemon.events("phase") if e["revision"] == added]
    assert [e["phase"] for e in phases] == [
        *("read", "validate", "render", "compare", "stage", "preflight"),
        *("swap", "restart", "probe"),
    ]
    assert {e["result"] for e in phases} == {"ok"}
    assert all(isinstance(e["duration_ms"], float) for e in phases)
    box.mail_works(SALES, "ana@example.test")
    box.workdir.git("revert", "--no-edit", "HEAD")
    box.workdir.push()
    reverted = box.tip()
    attempt(box, reverted)
    assert [box.rcpt(SALES), box.rcpt(BOB)] == [550, 550]
    assert box.status()["live"] == reverted
    assert daemon.stop() == 0


def test_the_daemon_commits_the_zone_back_and_its_own_commit_restarts_nothing(
    sandbox: Sandbox, start_daemon: StartDaemon
) -> None:
    box = sandbox
    box.write_host(commit_back=True)
    git = ["git", "-C", str(box.origin.path)]

    def main() -> str:
        return subprocess.run(
            [*git, "rev-parse", "main"], capture_output=True, text=True, check=True
        ).stdout.strip()

    daemon = start_daemon(box)
    daemon.ready()  # the tip is already live: nothing to apply, nothing to commit
    applied = box.commit(aliases("sales: ana\n"), "sales")
    attempt(box, applied)

    own = poll(lambda: main() if main() != applied else None, 20, "the daemon's commit")
    poll(lambda: box.status()["live"] == own, 20, "the daemon's commit recorded live")
    pid = box.pid()

    shown = subprocess.run(
        [*git, "show", "--name-only", "--format=%an <%ae>%n%P%n%s", own],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert shown[:2] == ["gitops-mail <gitops-mail@localhost>", applied]
    assert shown[2] == f"dns: update generated records for {DOMAIN} [skip ci]"
    assert [line for line in shown[3:] if line] == [f"dns/{DOMAIN}.zone"]
    assert [a["revision"] for a in box.history()].count(own) == 0  # its own: no entry
    assert box.status()["live"] == own
    passes = daemon.status()["passes"]
    daemon.signal(signal.SIGUSR1)  # another pass over the bot's commit: still nothing to do
    poll(lambda: daemon.status().get("passes", 0) > passes, 20, "a forced pass")
    assert box.pid() == pid  # the daemon's own commit never restarts chasquid
    assert main() == own  # identical bytes are never committed twice
    assert daemon.stop() == 0


def test_thirty_pushes_end_with_the_last_one_live_one_reconcile_at_a_time(
    sandbox: Sandbox, start_daemon: StartDaemon
) -> None:
    box = sandbox
    daemon = start_daemon(box)
    daemon.ready()

    pushed = [box.commit(aliases(f"a{i}: ana\n"), f"alias a{i}") for i in range(30)]

    attempt(box, pushed[-1])
    poll(lambda: not daemon.status().get("pending") and daemon.status()["state"] == "idle", 20)
    results = [(a["revision"], a["result"]) for a in box.history() if a["revision"] in pushed]
    assert sorted(revision for revision, _ in results) == sorted(pushed)  # each one once
    assert {result for _, result in results} == {"applied", "superseded"}
    assert results[0] == (pushed[-1], "applied")
    assert box.status()["live"] == pushed[-1]
    assert (box.config_dir / "domains" / DOMAIN / "aliases").read_text() == (
        BASE_ALIASES + "a29: ana\n"
    )
    assert box.rcpt(f"a29@{DOMAIN}") == 250
    assert box.rcpt(f"a28@{DOMAIN}") == 550
    passes = [e for e in daemon.events() if e["event"] in ("reconcile.start", "reconcile.end")]
    assert [e["event"] for e in passes] == ["reconcile.start", "reconcile.end"] * (len(passes) // 2)
    times = [datetime.fromisoformat(e["timestamp"]) for e in passes]
    assert times == sorted(times)  # each reconcile ends before the next one starts
    assert daemon.stop() == 0


def test_a_bad_push_is_recorded_invalid_and_not_retried_the_next_good_one_applies(
    sandbox: Sandbox, start_daemon: StartDaemon
) -> None:
    box = sandbox
    daemon = start_daemon(box)
    daemon.ready()
    before = box.tree()

    bad = box.commit(aliases("loop1: loop2\nloop2: loop1\n"), "A loop")

    invalid = attempt(box, bad, "invalid")
    assert invalid["reason"] == (
        f"revision {bad[:7]} is invalid (1 error); nothing was changed:\n"
        "chasquid/domains/example.test/aliases:2: error: alias loop: loop1@example.test -> "
        "loop2@example.test -> loop1@example.test: chasquid answers 451 to mail for these "
        "addresses (recursion limit exceeded)\n"
        "hint: break the loop: one of these addresses must lead to a user, a pipe or a "
        "remote address"
    )
    assert box.tree() == before
    poll(lambda: daemon.status()["last_pass"]["revision"] == bad, 10, "the end of the pass")
    refused = daemon.events("reconcile.refused")
    assert (refused[0]["revision"], refused[0]["result"], refused[0]["level"]) == (
        bad,
        "invalid",
        "error",
    )
    passes = daemon.status()["passes"]
    box.origin.git("pack-refs", "--all")  # packed-refs rewritten: a pass, no new tip

    poll(lambda: daemon.status()["passes"] > passes, 10, "a pass")
    assert daemon.status()["last_pass"]["result"] == "skipped"
    assert daemon.status()["last_pass"]["message"].startswith(f"{bad[:7]} was invalid (")
    good = box.commit(aliases("sales: ana\n"), "sales")
    attempt(box, good)
    assert box.rcpt(SALES) == 250
    assert [a["result"] for a in box.history() if a["revision"] == bad] == ["invalid"]
    assert daemon.stop() == 0


# --- crashes and signals ------------------------------------------------------------------


def test_a_daemon_killed_mid_apply_converges_when_started_again(
    sandbox: Sandbox, start_daemon: StartDaemon
) -> None:
    box = sandbox
    revision = box.commit(aliases("sales: ana\n"), "sales")

    killed = start_daemon(box, GITOPS_MAIL_FAULT="mid-replace")

    assert killed.child.wait(timeout=30) == -signal.SIGKILL
    daemon = start_daemon(box)
    attempt(box, revision)
    assert [a["result"] for a in box.history()[:2]] == ["applied", "interrupted"]
    assert box.rcpt(SALES) == 250
    box.mail_works()
    assert daemon.stop() == 0


def test_sigterm_during_a_pass_lets_it_finish_then_exits_0(
    sandbox: Sandbox, start_daemon: StartDaemon
) -> None:
    box = sandbox
    gate = box.gated_restart()
    daemon = start_daemon(box)
    daemon.ready()
    revision = box.commit(aliases("sales: ana\n"), "sales")
    poll((gate / "entered").exists, 20, "the restart to begin")

    daemon.signal(signal.SIGTERM)
    poll(lambda: daemon.events("daemon.stopping"), 10)
    assert not daemon.ended()
    (gate / "open").touch()

    assert daemon.child.wait(timeout=60) == 0
    assert box.history()[0]["revision"] == revision
    assert box.history()[0]["result"] == "applied"
    assert box.rcpt(SALES) == 250


def test_sigusr1_and_reconcile_now_force_a_pass_that_repairs_drift(
    sandbox: Sandbox, start_daemon: StartDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    box = sandbox
    daemon = start_daemon(box)
    daemon.ready()
    live_aliases = box.config_dir / "domains" / DOMAIN / "aliases"
    live_aliases.write_text(BASE_ALIASES + "sales: ana\n")  # changed by hand
    count = len(box.history())

    daemon.signal(signal.SIGUSR1)

    poll(lambda: len(box.history()) > count, 20, "a forced pass")
    assert box.history()[0]["result"] == "applied"
    assert live_aliases.read_text() == BASE_ALIASES
    code = daemon_command.run(_args(box, command="reconcile-now", no_wait=False, timeout=30.0))
    assert (code, capsys.readouterr().out) == (
        0,
        f"asked the daemon (pid {daemon.child.pid}) for a pass\n"
        f"unchanged: {box.tip()[:7]} is already live; nothing to do\n",
    )
    assert daemon.stop() == 0


def test_reconcile_now_without_a_daemon_says_so(sandbox: Sandbox) -> None:
    with pytest.raises(GitopsMailError) as raised:
        daemon_command.run(_args(sandbox, command="reconcile-now", no_wait=True, timeout=1.0))
    assert raised.value.message == f"no gitops-mail daemon runs for {sandbox.state_dir}"


def _args(box: Sandbox, **fields: Any) -> argparse.Namespace:
    return argparse.Namespace(config=str(box.host_file), **fields)


# --- other triggers --------------------------------------------------------------------


def test_a_renewed_certificate_is_installed_and_served(
    sandbox: Sandbox, start_daemon: StartDaemon
) -> None:
    box = sandbox
    daemon = start_daemon(box)
    daemon.ready()
    fullchain, key = box.new_cert("renewed")

    shutil.copy(key, box.privkey)  # as a renewal does: the same paths, new bytes
    shutil.copy(fullchain, box.fullchain)

    new_leaf = leaf_sha256(fullchain)
    poll(lambda: served_leaf(box) == new_leaf, 20, "the renewed certificate to be served")
    assert box.history()[0]["result"] == "applied"
    assert box.history()[0]["revision"] == box.tip()
    assert daemon.stop() == 0


def served_leaf(box: Sandbox) -> str:
    """SHA-256 of the certificate chasquid serves; "" while it restarts."""
    try:
        return hashlib.sha256(box.served_leaf()).hexdigest()
    except OSError:
        return ""


def test_a_work_tree_repo_commit_and_a_packed_refs_update_are_seen(
    sandbox: Sandbox, start_daemon: StartDaemon
) -> None:
    box = sandbox
    text = box.host_file.read_text().replace(
        f"repo: {box.origin.path}", f"repo: {box.workdir.path}"
    )
    box.host_file.write_text(text)
    daemon = start_daemon(box)
    daemon.ready()

    local = box.workdir.commit(aliases("sales: ana\n"), "sales, committed on the host")
    attempt(box, local)
    box.workdir.git("pack-refs", "--all", "--prune")
    tree = box.workdir.git("write-tree").strip()  # the same files, a new commit
    packed = box.workdir.git("commit-tree", tree, "-p", local, "-m", "packed").strip()
    refs = box.workdir.path / ".git" / "packed-refs"
    lock = refs.with_name("packed-refs.lock")
    lock.write_text(
        refs.read_text().replace(f"{local} refs/heads/main", f"{packed} refs/heads/main")
    )
    lock.rename(refs)  # as git writes it

    attempt(box, packed, "unchanged")
    assert box.workdir.git("rev-parse", "main").strip() == packed
    assert daemon.stop() == 0


def test_poll_mode_fetches_the_remote_and_applies_its_tip(
    sandbox: Sandbox, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    box = sandbox
    local = tmp_path / "local.git"
    box.origin.git("clone", "--quiet", "--bare", str(box.origin.path), str(local))
    text = box.host_file.read_text().replace(f"repo: {box.origin.path}", f"repo: {local}")
    box.host_file.write_text(text + f"remote: {box.origin.path}\npoll_interval: 0.2\n")
    daemon = start_daemon(box)
    daemon.ready()

    revision = box.commit(aliases("sales: ana\n"), "sales")  # pushed to the remote only

    attempt(box, revision)
    assert box.rcpt(SALES) == 250
    lines = daemonstatus.status_lines(box.state_dir)
    assert lines[0] == (
        f"daemon:   running (pid {daemon.child.pid}), polling {box.origin.path} {local} main"
    )
    assert lines[-1].startswith("daemon:   next poll 20")
    assert daemon.stop() == 0


def test_a_repo_that_is_not_there_is_refused_at_start(sandbox: Sandbox, tmp_path: Path) -> None:
    text = sandbox.host_file.read_text().replace(
        f"repo: {sandbox.origin.path}", f"repo: {tmp_path / 'nothing.git'}"
    )
    sandbox.host_file.write_text(text)
    settings = hostsettings.load(str(sandbox.host_file))

    with pytest.raises(GitopsMailError) as raised:
        daemon_command.serve(settings)

    assert (
        raised.value.message
        == f"cannot watch {tmp_path / 'nothing.git' / 'refs'}: No such file or directory"
    )
    assert raised.value.hint == f"check repo: in {sandbox.host_file}; it must be a git repository"
    assert not (sandbox.state_dir / "daemon.pid").exists()
