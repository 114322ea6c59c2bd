"""A real ``git push`` through the hooks of ``gitops-mail hooks install``, with the daemon.

The pusher sees the pre-receive verdict and then the daemon's result, and the
push returns only once the new configuration is live on the real chasquid:
the new alias is accepted as soon as ``git push`` has returned, without
waiting any further. A rejected push leaves the branch and the server as
they were.
"""

from __future__ import annotations

import subprocess

import pytest

pytest.register_assert_rewrite("apply_fixtures", "daemon_fixtures")

from apply_fixtures import ALIASES_PATH, BASE_ALIASES, DOMAIN, Sandbox  # noqa: E402 - after the rewrite
from daemon_fixtures import SALES, StartDaemon, aliases  # noqa: E402

pytest_plugins = ["apply_fixtures", "daemon_fixtures"]
pytestmark = [pytest.mark.netns, pytest.mark.chasquid]


def push(box: Sandbox) -> tuple[int, list[str]]:
    """``git push`` from the clone; its exit code and what the hooks printed."""
    done = subprocess.run(
        ["git", "push", "origin", "HEAD:refs/heads/main"],
        cwd=box.workdir.path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    said = [
        line.removeprefix("remote: ").rstrip()
        for line in done.stderr.splitlines()
        if line.startswith("remote: ")
    ]
    return done.returncode, said


def installed(box: Sandbox) -> None:
    done = box.gm("hooks", "install", str(box.origin.path))
    assert done.code == 0, done.err


def test_a_push_returns_once_its_alias_is_live(sandbox: Sandbox, start_daemon: StartDaemon) -> None:
    box = sandbox
    installed(box)
    daemon = start_daemon(box)
    daemon.ready()
    assert box.rcpt(SALES) == 550
    revision = box.workdir.commit(aliases("sales: ana\n"), "sales")

    code, said = push(box)

    assert box.rcpt(SALES) == 250  # at once: the push waited for the daemon's result
    assert code == 0
    assert said == [
        f"main ({revision[:7]}): valid",
        f"gitops-mail: waiting up to 15 s for the daemon to apply {revision[:7]}",
        f"applied {revision[:7]}: restarted chasquid, probes ok (1 alias added)",
    ]
    assert box.status()["live"] == revision
    assert daemon.stop() == 0


def test_a_rejected_push_changes_nothing(sandbox: Sandbox, start_daemon: StartDaemon) -> None:
    box = sandbox
    installed(box)
    daemon = start_daemon(box)
    daemon.ready()
    live, tree = box.tip(), box.tree()
    loop = box.workdir.commit({ALIASES_PATH: BASE_ALIASES + "a: b\nb: a\n"}, "a loop")

    code, said = push(box)

    assert code == 1
    assert said == [
        f"{ALIASES_PATH}:2: error: alias loop: a@{DOMAIN} -> b@{DOMAIN} -> a@{DOMAIN}: "
        "chasquid answers "
        "451 to mail for these addresses (recursion limit exceeded)",
        "    hint: break the loop: one of these addresses must lead to a user, a pipe or a remote "
        "address",
        f"main ({loop[:7]}): invalid: 1 error, 0 warnings",
        "gitops-mail: push rejected: fix the problems above and push again",
    ]
    assert box.origin.git("rev-parse", "main").strip() == live
    assert box.tree() == tree
    assert box.status()["live"] == live
    assert daemon.status()["passes"] == 1  # the daemon never saw a new tip
    assert daemon.stop() == 0
