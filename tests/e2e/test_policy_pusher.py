"""A non-root pusher against a live host: the bare repo is theirs, the server root's.

The sandbox's conf repo belongs to ``gitops-test-pusher``, who commits and
pushes as themselves; root runs the daemon and chasquid and installed the
push hooks. A push that asks the host to run a shell as delivery agent is
refused by pre-receive naming the setting that would allow it: the branch,
the live tree and the served mail are as before, and the daemon never sees
a new tip.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("apply_fixtures", "daemon_fixtures")

from apply_fixtures import CONF_PATH, Sandbox  # noqa: E402 - after the assertion rewrite
from daemon_fixtures import StartDaemon  # noqa: E402
from support.hostpython import open_python  # noqa: E402
from support.pusher import Pusher, PusherCheckout, pusher_conf_repo  # noqa: E402

from gitops_mail.cli import hooks  # noqa: E402

pytest_plugins = ["apply_fixtures", "daemon_fixtures"]
pytestmark = [pytest.mark.netns, pytest.mark.chasquid]


@pytest.fixture
def conf_repo(pusher: Pusher) -> tuple[PusherCheckout, PusherCheckout]:
    """The sandbox's conf repo, owned by the pusher (replaces apply_fixtures' own)."""
    return pusher_conf_repo(pusher)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """Root's directory the pusher may enter: the hooks' settings and Python."""
    where = Path(tempfile.mkdtemp(prefix="gitops-host-", dir="/tmp"))
    where.chmod(0o755)
    yield where
    shutil.rmtree(where)


def install_hooks(box: Sandbox, open_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hooks, reading a readable copy of the host settings (the sandbox keeps its own
    under root's temporary directory), run by a Python the pusher may start."""
    settings = open_dir / "gitops-mail.yaml"
    shutil.copy(box.host_file, settings)
    settings.chmod(0o644)
    args = argparse.Namespace(
        command="hooks", repo=str(box.origin.path), config=str(settings), timeout=1.0, force=False
    )
    with monkeypatch.context() as patch:
        patch.setattr(sys, "executable", str(open_python(open_dir)))
        assert hooks.run(args) == 0


def test_a_pushers_shell_as_delivery_agent_never_reaches_the_host(
    sandbox: Sandbox,
    start_daemon: StartDaemon,
    pusher: Pusher,
    open_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box = sandbox
    install_hooks(box, open_dir, monkeypatch)
    daemon = start_daemon(box)
    daemon.ready()
    live, tree = box.tip(), box.tree()
    conf = box.conf(mail_delivery_agent_bin="/bin/sh", mail_delivery_agent_args="-c")
    attack = box.workdir.commit({CONF_PATH: conf}, "deliver with a shell")

    done = pusher.push(box.workdir.path, check=False)

    said = [
        line.removeprefix("remote: ").rstrip()
        for line in done.stderr.splitlines()
        if line.startswith("remote: ")
    ]
    assert done.returncode == 1
    assert said == [
        f'{CONF_PATH}:8: error: mail_delivery_agent_bin "/bin/sh" is not allowed by this '
        "host's policy",
        "    hint: root can allow it in the host settings: policy.delivery_agents",
        f"main ({attack[:7]}): invalid: 1 error, 0 warnings",
        "gitops-mail: push rejected: fix the problems above and push again",
    ]
    assert box.origin.git("rev-parse", "main").strip() == live
    assert box.tree() == tree
    assert box.status()["live"] == live
    box.mail_works()
    assert daemon.status()["passes"] == 1  # the daemon never saw a new tip
    assert daemon.stop() == 0
