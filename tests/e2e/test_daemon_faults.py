"""The daemon under faults: a newer push during a probe wait, a restart that fails
for reasons outside the revision, another clone pushing while it commits back.

Real components throughout: a bare conf repo pushed to from clones, the
daemon as a child process, the real chasquid under gitops-mail's supervisor.
Each race is made deterministic by a gate or a held port, never by timing.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("apply_fixtures", "daemon_fixtures")

from apply_fixtures import (  # noqa: E402 - after the assertion rewrite is registered
    CONF_PATH,
    DOMAIN,
    Sandbox,
    poll,
)
from daemon_fixtures import SALES, Daemon, StartDaemon, aliases, attempt  # noqa: E402

from gitops_mail.daemon import status as daemonstatus  # noqa: E402

pytest_plugins = ["apply_fixtures", "daemon_fixtures"]
pytestmark = [pytest.mark.netns, pytest.mark.chasquid]

RESTORED = "the server was restored to its previous configuration and passes its probes"
LONG_WAIT = 120  # probe_deadline: far longer than any poll in these tests
SUPPORT = f"support@{DOMAIN}"

FAILING_RESTART = """#!/bin/sh
# restart_command: refuses while {root}/broken exists (as a masked unit would);
# otherwise has the supervisor start a new chasquid and waits until it has.
set -eu
if [ -e "{root}/broken" ]; then echo "chasquid.service is masked" >&2; exit 1; fi
old=$(cat "{state}/chasquid.pid")
echo "$old" >"{state}/chasquid.restart"
kill "$old" 2>/dev/null || true
while [ "$(cat "{state}/chasquid.pid")" = "$old" ]; do sleep 0.01; done
"""


def restart_script(box: Sandbox) -> Path:
    """``FAILING_RESTART`` written for ``box``: a restart through its supervisor."""
    script = box.root / "restart-chasquid"
    script.write_text(FAILING_RESTART.format(root=box.root, state=box.state_dir))
    script.chmod(0o755)
    return script


def held_port() -> socket.socket:
    """A bound loopback socket: a chasquid told to listen on its port exits at start."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    return held


# --- a newer push while the probes wait ------------------------------------------------


def test_a_push_during_a_probe_wait_cancels_it_and_the_newer_tip_goes_live(
    sandbox: Sandbox, start_daemon: StartDaemon
) -> None:
    box = sandbox
    # A restart command, not the supervise service: through it gitops-mail cannot
    # see chasquid exit at start, so the probes wait (for a newer tip to cut them).
    box.write_host(
        service="command", restart_command=[str(restart_script(box))], probe_deadline=LONG_WAIT
    )
    daemon = start_daemon(box)
    daemon.ready()
    with held_port() as held:
        port = held.getsockname()[1]
        stuck = box.commit({CONF_PATH: box.conf(smtp_address=f"127.0.0.1:{port}")}, "taken")
        poll(lambda: _started(daemon, stuck), 20, "the reconcile of the stuck revision")

        good = box.commit({CONF_PATH: box.conf(), **aliases("sales: ana\n")}, "sales")

        attempt(box, good)  # polls 20 s: far less than the stuck revision's probe deadline
    cut = attempt(box, stuck, "superseded")
    assert cut["reason"].startswith(
        f"superseded by {good[:7]} while its probes waited; never proven (probe failed: "
        f"smtp.connect: 127.0.0.1:{port} did not answer ("
    )
    assert cut["reason"].endswith(f"); {RESTORED}") and "…" not in cut["reason"]  # whole
    assert {"swap", "restart", "probe", "restore", "restore-restart", "restore-probe"} <= set(
        cut["phases_ms"]
    )
    assert [a["result"] for a in box.history() if a["revision"] == stuck] == ["superseded"]
    assert [(e["revision"], e["by"]) for e in daemon.events("probe.wait_cancelled")] == [
        (stuck, good)
    ]
    superseded = daemon.events("reconcile.superseded")
    assert [(e["revision"], e["by"], e["level"]) for e in superseded] == [(stuck, good, "info")]
    told = superseded[0]["reason"]
    assert told.startswith(
        f"revision {stuck[:7]} was not proven: {good[:7]} arrived while its probes waited "
        f"(probe failed: smtp.connect: 127.0.0.1:{port} did not answer ("
    )
    assert told.endswith(f"); the wait was cancelled). {RESTORED[0].upper()}{RESTORED[1:]}.")
    assert box.status()["live"] == good
    assert box.rcpt(SALES) == 250
    box.mail_works()
    assert daemon.stop() == 0


def test_a_probe_wait_nothing_cancels_still_ends_in_a_restore(
    sandbox: Sandbox, start_daemon: StartDaemon
) -> None:
    box = sandbox  # supervised: the probes stop waiting once the bad chasquid has exited
    daemon = start_daemon(box)
    daemon.ready()
    before = box.tree()
    with held_port() as held:
        port = held.getsockname()[1]
        bad = box.commit({CONF_PATH: box.conf(smtp_address=f"127.0.0.1:{port}")}, "taken")

        failed = attempt(box, bad, "failed")

    assert failed["reason"].endswith("; " + RESTORED) and "…" not in failed["reason"]
    assert "cancelled" not in failed["reason"]
    assert box.tree() == before
    assert daemon.events("probe.wait_cancelled") == []
    poll(lambda: daemon.status()["last_pass"]["revision"] == bad, 10, "the end of the pass")
    assert daemon.status()["last_pass"]["result"] == "failed"
    box.mail_works()
    assert daemon.stop() == 0


# --- a restart that fails outside the revision -----------------------------------------------


def test_a_failing_restart_is_retried_with_back_off_until_it_works(
    sandbox: Sandbox, start_daemon: StartDaemon
) -> None:
    box = sandbox
    script = restart_script(box)
    box.write_host(service="command", restart_command=[str(script)])
    daemon = start_daemon(box)
    daemon.ready()
    (box.root / "broken").touch()

    revision = box.commit(aliases("sales: ana\n"), "sales")

    said = f"restarting chasquid failed: command '{script}' exited 1: chasquid.service is masked"
    first = attempt(box, revision, "error")
    assert first["reason"] == (  # whole, though longer than one line shows
        f"{said}; the previous configuration was restored, but the server still fails: {said}"
    )
    poll(lambda: len(daemon.events("pass.retry")) >= 2, 20, "a second try")
    # the worker logs pass.retry, then writes the error to its status file
    poll(lambda: "error:" in daemonstatus.status_lines(box.state_dir)[-1], 10, "the error shown")
    lines = daemonstatus.status_lines(box.state_dir)
    told = (
        f"revision {revision[:7]} could not be proven: {said}. The previous "
        f"configuration was restored, but the server still fails: {said}: the fault is this "
        "host's, not the revision's"
    )
    assert lines[-1].startswith(f"daemon:   error: {told[:299].rstrip()}…")  # one line: cut
    assert (
        f"… (all of it: gitops-mail history --revision {revision[:7]}); retry at 20" in (lines[-1])
    )
    (box.root / "broken").unlink()

    attempt(box, revision)
    results = [a["result"] for a in box.history() if a["revision"] == revision]
    assert results[0] == "applied"
    assert set(results[1:]) == {"error"}
    retries = daemon.events("pass.retry")
    assert [e["failures"] for e in retries] == list(range(1, len(retries) + 1))
    assert 0.8 <= retries[0]["delay_s"] <= 1.2  # 1 s, then doubling, each ± 20 %
    assert 1.6 <= retries[1]["delay_s"] <= 2.4
    assert box.rcpt(SALES) == 250
    # history says "applied" before the worker ends the pass and clears the error
    poll(lambda: daemon.status()["last_pass"]["result"] == "applied", 10, "the end of the pass")
    assert daemon.status()["last_error"] is None
    assert not any("error:" in line for line in daemonstatus.status_lines(box.state_dir))
    assert daemon.stop() == 0


def test_apply_with_a_restart_that_always_fails_blames_the_host_not_the_revision(
    sandbox: Sandbox,
) -> None:
    box = sandbox
    before = box.tree()
    box.write_host(service="command", restart_command=["/bin/false"])
    revision = box.commit(aliases("sales: ana\n"), "sales")

    done = box.gm("apply")

    said = "restarting chasquid failed: command '/bin/false' exited 1"
    assert (done.code, done.out) == (1, "")
    assert done.err == (
        f"gitops-mail: error: revision {revision[:7]} could not be proven: {said}. The previous "
        f"configuration was restored, but the server still fails: {said}: the fault is this "
        "host's, not the revision's\n"
        "    hint: fix chasquid or its service (see `gitops-mail status` and chasquid's log); "
        "the daemon tries again with back-off, `gitops-mail apply` tries now\n"
    )
    last = box.history()[0]
    assert (last["revision"], last["result"]) == (revision, "error")
    assert box.tree() == before
    box.mail_works()  # the running chasquid was never stopped


# --- another clone pushes while the daemon commits back --------------------------------------


def test_a_push_from_another_clone_during_commit_back_loses_nothing(
    sandbox: Sandbox, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    box = sandbox
    gate = box.gated_restart()  # the daemon's next apply waits in its restart
    box.write_host(
        service="command", restart_command=[str(box.root / "restart-chasquid")], commit_back=True
    )
    box.origin.git("config", "core.logAllRefUpdates", "always")  # every move of main, kept
    daemon = start_daemon(box)
    daemon.ready()
    applied = box.commit(aliases("sales: ana\n"), "sales")
    poll((gate / "entered").exists, 20, "the apply to reach its restart")
    other = _clone(box, tmp_path / "other")

    pushed = other.commit(aliases("sales: ana\nsupport: ana\n"), "support, from another clone")
    other.push()
    (gate / "open").touch()  # the apply ends and commits back onto a branch that moved

    own = poll(lambda: _bot_tip(box), 20, "the daemon's commit")
    attempt(box, own)
    assert _first_parents(box, own, 3) == [own, pushed, applied]
    assert _moves(box) == [applied, pushed, own]  # as main moved, oldest first
    assert _is_ancestor(box, applied, pushed)
    assert _is_ancestor(box, pushed, own)  # each move a fast-forward: nothing rewritten
    retried = daemon.events("commitback.retry")
    assert [(e["revision"], e["tip"]) for e in retried] == [(applied, pushed)]
    done = [e for e in daemon.events("commitback") if e["revision"] == applied[:7]]
    assert [(e["result"], e["commit"]) for e in done] == [("committed", own[:7])]
    assert [a["result"] for a in box.history() if a["revision"] == pushed] == ["superseded"]
    assert box.status()["live"] == own
    assert [box.rcpt(SALES), box.rcpt(SUPPORT)] == [250, 250]
    poll(lambda: daemon.status()["last_pass"]["revision"] == own, 10, "the end of the pass")
    assert daemonstatus.status_lines(box.state_dir)[-1] == (
        f"daemon:   last commit-back {own[:7]} unchanged: {own[:7]} already holds the "
        "generated files"
    )
    assert daemon.stop() == 0


def _started(daemon: Daemon, revision: str) -> bool:
    return any(e["revision"] == revision for e in daemon.events("reconcile.start"))


def _clone(box: Sandbox, path: Path) -> Any:
    """Another clone of the conf repo, to commit in and push from (a ``Workdir``)."""
    subprocess.run(["git", "clone", "--quiet", str(box.origin.path), str(path)], check=True)
    return type(box.workdir)(path)


def _bot_tip(box: Sandbox) -> str | None:
    tip = box.origin.git("rev-parse", "main").strip()
    author = box.origin.git("log", "-1", "--format=%an", tip).strip()
    return tip if author == "gitops-mail" else None


def _first_parents(box: Sandbox, tip: str, count: int) -> list[str]:
    out = box.origin.git("rev-list", "--first-parent", f"--max-count={count}", tip)
    return out.split()


def _moves(box: Sandbox) -> list[str]:
    """Every value main took since its reflog was turned on, oldest first."""
    return box.origin.git("reflog", "show", "--format=%H", "main").split()[::-1]


def _is_ancestor(box: Sandbox, old: str, new: str) -> bool:
    done = subprocess.run(
        ["git", "-C", str(box.origin.path), "merge-base", "--is-ancestor", old, new], check=False
    )
    return done.returncode == 0
