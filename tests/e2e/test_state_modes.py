"""A first apply on a new host under ``umask 000`` (issue 9, item 6), with the real chasquid.

Before, it made the state dir 0777 and ``chasquid.log`` 0666, and another user
could then plant a symlink or a record there. Now every file and directory
gitops-mail makes has an explicit mode whatever the umask, and the pusher can
do nothing in the state dir.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

pytest.register_assert_rewrite("apply_fixtures")

from apply_fixtures import (  # noqa: E402 - after the assertion rewrite is registered
    ALIASES_PATH,
    BASE_ALIASES,
    DOMAIN,
    GITOPS_MAIL,
    MakeSandbox,
    poll,
)
from support.pusher import Pusher  # noqa: E402

pytest_plugins = ["apply_fixtures"]
pytestmark = [pytest.mark.netns, pytest.mark.chasquid]


def modes(directory: Path) -> dict[str, str]:
    """``name: "0600"`` for the directory itself (``.``) and every entry in it."""
    found = {".": f"{stat.S_IMODE(directory.stat().st_mode):04o}"}
    for path in sorted(directory.iterdir()):
        found[path.name] = f"{stat.S_IMODE(path.lstat().st_mode):04o}"
    return found


def open_to_others(root: Path) -> list[str]:
    """Everything under ``root`` (a symlink aside) that group or others may write."""
    return [
        f"{path} {stat.S_IMODE(path.lstat().st_mode):04o}"
        for path in [root, *root.rglob("*")]
        if not path.is_symlink() and path.lstat().st_mode & 0o022
    ]


def test_a_first_apply_under_umask_000_leaves_nothing_open(
    make_sandbox: MakeSandbox, pusher: Pusher
) -> None:
    box = make_sandbox()
    box.stop_supervisor()
    shutil.rmtree(box.state_dir)  # a new host: nothing made yet
    with (box.root / "supervise.out").open("wb") as out:
        supervise = subprocess.Popen(
            [*GITOPS_MAIL, "supervise"], env=box.env(), stdout=out, stderr=out, umask=0
        )
    try:
        poll((box.state_dir / "chasquid.pid").exists, what="the supervisor's first chasquid")
        box.commit({ALIASES_PATH: BASE_ALIASES + "sales: ana\n"}, "sales@")
        done = subprocess.run(
            [*GITOPS_MAIL, "apply"],
            env=box.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            umask=0,
        )
        assert done.returncode == 0, done.stderr
        assert box.rcpt(f"sales@{DOMAIN}") == 250
        box.mail_works()
    finally:
        supervise.terminate()
        supervise.wait(timeout=30)

    assert modes(box.state_dir) == {
        ".": "0700",
        "chasquid.log": "0600",
        "inventory.json": "0600",
        "lock": "0600",
        "sources.json": "0600",
        "state.json": "0640",
        "supervisor.lock": "0600",
    }
    assert open_to_others(box.config_dir.parent) == []  # the config dir and its work dir
    for argv in (
        ["ls", box.state_dir],
        ["cat", box.state_dir / "state.json"],
        ["ln", "-sf", pusher.root / "target", box.state_dir / "lock"],
        ["touch", box.state_dir / "inventory.json"],
    ):
        done = pusher.run(argv, check=False)
        assert (done.returncode != 0, "Permission denied" in done.stderr) == (True, True), argv
    assert not os.path.lexists(pusher.root / "target")
