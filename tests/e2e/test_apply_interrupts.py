"""An apply killed, interrupted or racing another: never half a change.

- SIGKILL at each of livefs's fault points (``GITOPS_MAIL_FAULT``), and while
  chasquid is being restarted: the next plain ``apply`` converges to exactly
  the tree a clean apply makes, and chasquid serves it.
- SIGTERM during the restart and probes: the apply finishes (applied, or
  restored) and then ends by the signal; before the swap it stops at once
  and leaves nothing behind (no staging dir, no pre-flight chasquid).
- SIGKILL while the pre-flight's chasquid runs: that chasquid dies with it
  (parent-death signal), and the next apply removes the directory it left.
- Two applies at once are serialised by the state lock.

Slow phases are made slow with a gate, never with a fixed sleep: a
``restart_command`` (or a chasquid wrapper) that says it started and waits
until the test opens the gate.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from support import chasquiduser

pytest.register_assert_rewrite("apply_fixtures")

from apply_fixtures import (  # noqa: E402 - after the assertion rewrite is registered
    ALIASES_PATH,
    BASE_ALIASES,
    BOB,
    CONF_PATH,
    DOMAIN,
    MANIFEST_PATH,
    USERS_PATH,
    Sandbox,
    leaf_sha256,
    poll,
)

from gitops_mail.host.livefs.configdir import FAULT_POINTS, LiveDir  # noqa: E402

pytest_plugins = ["apply_fixtures"]
pytestmark = [pytest.mark.netns, pytest.mark.chasquid]

SWAP_POINTS = [p for p in FAULT_POINTS if p != "mid-restore"]
WAITING = "gitops-mail: another apply is running; waiting for it\n"


def tip(box: Sandbox) -> str:
    return box.tip()


def served(box: Sandbox) -> str:
    """SHA-256 of the certificate chasquid presents."""
    return hashlib.sha256(box.served_leaf()).hexdigest()


def new_revision(box: Sandbox) -> tuple[str, str]:
    """Commit a change of four files (aliases, users, certificate, key); (revision, leaf)."""
    fullchain, key = box.new_cert("second")
    revision = box.commit(
        {
            ALIASES_PATH: BASE_ALIASES + "sales: ana\n",
            USERS_PATH: box.users.ana_bob,
            MANIFEST_PATH: box.manifest(fullchain=fullchain, key=key),
        },
        "sales@, bob@ and a new certificate",
    )
    return revision, leaf_sha256(fullchain)


def assert_serves(box: Sandbox, leaf: str, *, new: bool, mail: bool = True) -> None:
    """chasquid serves the old (base) or the new revision: certificate, RCPT answers, mail."""
    assert served(box) == leaf
    code = 250 if new else 550
    assert [box.rcpt(f"sales@{DOMAIN}"), box.rcpt(BOB)] == [code, code]
    if mail:
        box.mail_works()


def killed(child: subprocess.Popen[bytes]) -> int:
    return child.wait(timeout=30)


# --- SIGKILL ------------------------------------------------------------------------------


def test_sigkill_at_every_swap_fault_point_then_apply_converges(sandbox: Sandbox) -> None:
    box = sandbox
    base, old_tree, old_leaf = tip(box), box.tree(), served(box)
    revision, new_leaf = new_revision(box)
    box.apply_ok()  # a clean apply: the tree every interrupted one must end in
    new_tree = box.tree()
    assert_serves(box, new_leaf, new=True)
    live = LiveDir(box.config_dir, box.state_dir)

    for point in SWAP_POINTS:
        assert box.run("rollback", "--to", base).code == 0, point
        assert box.tree() == old_tree, point

        done = box.gm("apply", env={"GITOPS_MAIL_FAULT": point})

        assert done.code == -signal.SIGKILL, (point, done)
        assert (live.journal_path.exists(), point) == (point != "after-checkpoint", point)
        assert served(box) == old_leaf, point  # nothing restarted chasquid
        done = box.gm("apply")
        assert done.code == 0, (point, done.err)
        assert done.out.endswith(f"applied {revision[:7]}: restarted chasquid, probes ok\n")
        assert box.tree() == new_tree, point
        assert not live.journal_path.exists()
        assert os.listdir(live.work_dir / "checkpoint") == [], point
        assert_serves(box, new_leaf, new=True, mail=point == SWAP_POINTS[-1])
        latest, previous = box.history()[:2]
        assert (latest["revision"], latest["result"]) == (revision, "applied")
        if point == "after-checkpoint":  # nothing had changed yet: nothing to tell
            assert (previous["revision"], previous["result"]) == (base, "applied")
        else:
            assert (previous["revision"], previous["result"], previous["reason"]) == (
                revision,
                "interrupted",
                f"an interrupted swap in {box.config_dir} was rolled back: "
                "4 files are as they were before it",
            ), point


def test_sigkill_while_restoring_then_apply_restores_again(sandbox: Sandbox) -> None:
    box = sandbox
    before, leaf = box.tree(), served(box)
    with socket.socket() as held:  # the revision makes chasquid exit at start
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        revision = box.commit(
            {CONF_PATH: box.conf(smtp_address=f"127.0.0.1:{port}")}, "A taken port"
        )

        done = box.gm("apply", env={"GITOPS_MAIL_FAULT": "mid-restore"})

        assert done.code == -signal.SIGKILL
        journal = LiveDir(box.config_dir, box.state_dir).journal_path
        assert '"phase": "restore"' in journal.read_text()
        done = box.gm("apply")

    assert done.code == 1
    assert "The server was restored to its previous configuration and passes its probes." in (
        done.err
    )
    assert not journal.exists()
    latest, interrupted = box.history()[:2]
    assert (interrupted["revision"], interrupted["result"], interrupted["reason"]) == (
        revision,
        "interrupted",
        f"an interrupted restore in {box.config_dir} was rolled back: "
        "1 file is as they were before it",
    )
    box.assert_untouched(before, "failed", latest["reason"])
    assert_serves(box, leaf, new=False)


def test_sigkill_during_the_restart_then_apply_restarts_and_probes(sandbox: Sandbox) -> None:
    box = sandbox
    gate = box.gated_restart()
    revision, new_leaf = new_revision(box)
    old_leaf = served(box)
    apply, _ = box.start_gm("apply", "apply", session=True)
    poll((gate / "entered").exists, what="the restart command")

    os.killpg(apply.pid, signal.SIGKILL)  # the apply and its restart command: a power cut

    assert killed(apply) == -signal.SIGKILL
    assert served(box) == old_leaf  # the new tree is on disk; chasquid never restarted
    assert box.status()["live"] != revision
    (gate / "open").touch()
    done = box.gm("apply")
    assert done.code == 0, done.err
    assert done.out == f"applied {revision[:7]}: restarted chasquid, probes ok\n"
    assert box.history()[0]["action"] == "restart"
    assert_serves(box, new_leaf, new=True)
    assert box.gm("apply").out == f"{revision[:7]} is already live; nothing to do\n"


# --- SIGTERM ------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["applied", "restored"])
def test_sigterm_during_restart_and_probe_finishes_then_exits(
    sandbox: Sandbox, outcome: str
) -> None:
    box = sandbox
    before, old_leaf = box.tree(), served(box)
    gate = box.gated_restart()
    # Keep the gate. Through a command gitops-mail cannot see chasquid exit, so the
    # bad revision's probes wait out the deadline: 1 s is enough for them to fail
    # (a restore's probes wait 10 s at least). A good revision's get the default.
    box.write_host(
        service="command",
        restart_command=[str(box.root / "restart-chasquid")],
        probe_deadline=1 if outcome == "restored" else None,
    )
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    if outcome == "applied":
        revision, new_leaf = new_revision(box)
    else:  # a revision that makes chasquid exit at start: the apply must restore
        port = held.getsockname()[1]
        revision = box.commit({CONF_PATH: box.conf(smtp_address=f"127.0.0.1:{port}")})
    apply, output = box.start_gm("apply", "apply")
    poll((gate / "entered").exists, what="the restart command")

    apply.send_signal(signal.SIGTERM)
    (gate / "open").touch()

    assert killed(apply) == -signal.SIGTERM
    held.close()
    assert output.read_text() == ""  # ended by the signal before printing its outcome
    last = box.history()[0]
    assert (last["revision"], last["result"]) == (
        revision,
        "applied" if outcome == "applied" else "failed",
    )
    assert not LiveDir(box.config_dir, box.state_dir).journal_path.exists()
    if outcome == "applied":
        assert_serves(box, new_leaf, new=True)
    else:
        assert last["reason"].endswith(
            "the server was restored to its previous configuration and passes its probes"
        )
        assert box.tree() == before
        assert_serves(box, old_leaf, new=False)


CHASQUID_WRAPPER = """#!/bin/sh
# chasquid for the pre-flight: says it started, waits at the gate, then runs chasquid.
touch "{gate}/preflight"
while [ ! -e "{gate}/open" ]; do sleep 0.01; done
exec /usr/bin/chasquid "$@"
"""


def test_sigterm_before_the_swap_stops_at_once_and_leaves_nothing(sandbox: Sandbox) -> None:
    box = sandbox
    before, pid = box.tree(), box.pid()
    history = box.history()
    gate = chasquiduser.give(box.root / "gate", directory=True)  # the wrapper runs as chasquid
    wrapper = box.root / "chasquid-wrapper"
    wrapper.write_text(CHASQUID_WRAPPER.format(gate=gate))
    wrapper.chmod(0o755)
    box.host_file.write_text(
        box.host_file.read_text().replace("chasquid:\n", f"chasquid:\n  binary: {wrapper}\n")
    )
    box.commit({ALIASES_PATH: BASE_ALIASES + "sales: ana\n"})
    apply, output = box.start_gm("apply", "apply")
    poll((gate / "preflight").exists, what="the pre-flight chasquid")

    apply.send_signal(signal.SIGTERM)

    assert killed(apply) == -signal.SIGTERM
    assert output.read_text() == ""
    # The pre-flight's chasquid was stopped with the apply; one that the signal
    # caught still starting dies with it (parent-death signal), a moment later.
    poll(lambda: wrappers(wrapper) == [], what="the pre-flight's chasquid to end")
    assert not (box.config_dir / ".gitops-mail" / "staging").exists()
    assert box.tree() == before
    assert box.history() == history
    assert box.pid() == pid
    box.mail_works()


def test_sigkill_during_the_preflight_leaves_no_chasquid_nor_directory(sandbox: Sandbox) -> None:
    box = sandbox
    supervised, before = box.pid(), box.tree()
    revision = box.commit({ALIASES_PATH: BASE_ALIASES + "sales: ana\n"})
    work_dir = box.config_dir / ".gitops-mail"

    done = box.gm("apply", env={"GITOPS_MAIL_FAULT": "preflight-running"})

    assert done.code == -signal.SIGKILL, done
    poll(lambda: preflight_chasquids(work_dir) == [], what="the pre-flight chasquid to die")
    assert [p.name.startswith("preflight-") for p in work_dir.glob("preflight-*")] == [True]
    assert box.tree() == before
    assert box.pid() == supervised
    done = box.gm("apply")
    assert done.code == 0, done.err
    assert done.out.endswith(f"applied {revision[:7]}: restarted chasquid, probes ok\n")
    assert list(work_dir.glob("preflight-*")) == []
    assert box.rcpt(f"sales@{DOMAIN}") == 250


def preflight_chasquids(work_dir: Path) -> list[str]:
    """Live (not zombie) chasquid processes whose data dir is a pre-flight's in ``work_dir``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit():
                continue
            stat_line = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        state = stat_line[stat_line.rindex(")") + 2]
        if f"{work_dir}/preflight-" in cmdline and state not in "ZX":
            found.append(f"{entry.name} {state} {cmdline}")
    return found


def wrappers(script: Path) -> list[int]:
    """Processes running ``script``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(script).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


# --- two at once ------------------------------------------------------------------------------


def test_two_applies_at_once_are_serialised(sandbox: Sandbox) -> None:
    box = sandbox
    gate = box.gated_restart()
    revision, new_leaf = new_revision(box)
    first, first_out = box.start_gm("first", "apply")
    poll((gate / "entered").exists, what="the first apply's restart")

    second, second_out = box.start_gm("second", "apply")
    poll(lambda: second_out.read_text() == WAITING, what="the second apply to wait")
    third = box.gm("apply", "--no-wait")
    (gate / "open").touch()

    assert (third.code, third.out) == (1, "")
    assert third.err == (
        f"gitops-mail: error: another apply is running (it holds {box.state_dir}/lock)\n"
        "    hint: wait for it, or run again without --no-wait\n"
    )
    assert first.wait(timeout=30) == 0
    assert first_out.read_text().endswith(
        f"applied {revision[:7]}: restarted chasquid, probes ok\n"
    )
    assert second.wait(timeout=30) == 0
    assert second_out.read_text() == WAITING + f"{revision[:7]} is already live; nothing to do\n"
    assert [(a["revision"], a["result"]) for a in box.history()[:2]] == [
        (revision, "unchanged"),
        (revision, "applied"),
    ]
    assert_serves(box, new_leaf, new=True)
