"""``apply`` where only the config dir is writable, as the systemd unit allows it.

deploy/gitops-mail.service has ``ProtectSystem=strict`` (/etc read-only) and
``ReadWritePaths=`` naming the config dir: systemd bind-mounts that directory
over itself, writable, inside a read-only /etc. Every rename of a swap or a
restore then has to stay inside that one mount, which it does because the work
dir is inside the config dir. The test builds the same two mounts and applies,
fails, restores and recovers through them.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("apply_fixtures")

from apply_fixtures import (  # noqa: E402 - after the assertion rewrite is registered
    ALIASES_PATH,
    BASE_ALIASES,
    CONF_PATH,
    MountFn,
    Sandbox,
)

from gitops_mail.host.livefs.configdir import LiveDir  # noqa: E402

pytest_plugins = ["apply_fixtures"]
pytestmark = [pytest.mark.netns, pytest.mark.chasquid]


@pytest.fixture
def only_config_dir_writable(sandbox: Sandbox, mount: MountFn) -> Iterator[Path]:
    """/etc read-only, the config dir a writable bind mount of its own: what systemd makes
    of ProtectSystem=strict and ReadWritePaths=<config dir>. Yields the read-only parent."""
    etc = sandbox.config_dir.parent
    mount("--bind", "-o", "ro", etc, etc)
    mount("--bind", sandbox.config_dir, sandbox.config_dir)
    remount = ["mount", "-o", "remount,bind,rw", str(sandbox.config_dir)]
    subprocess.run(remount, check=True, capture_output=True)
    yield etc


def test_apply_swaps_inside_the_one_writable_mount(
    sandbox: Sandbox, only_config_dir_writable: Path
) -> None:
    box, etc = sandbox, only_config_dir_writable
    assert _read_only(etc)
    revision = box.commit({ALIASES_PATH: BASE_ALIASES + "sales: ana\n"}, "Add sales@")

    done = box.gm("apply")

    assert done.code == 0, done.err
    assert done.out.endswith(f"applied {revision[:7]}: restarted chasquid, probes ok\n")
    box.mail_works(to="sales@example.test", mailbox="ana@example.test")
    assert sorted(os.listdir(etc)) == ["chasquid"]  # nothing was (or could be) written beside
    assert os.listdir(box.config_dir / ".gitops-mail") == ["checkpoint"]
    assert box.status()["drift"] == {"modified": [], "missing": [], "foreign": []}


def test_a_failed_revision_is_restored_inside_the_one_writable_mount(
    sandbox: Sandbox, only_config_dir_writable: Path
) -> None:
    box = sandbox
    before = box.tree()
    with socket.socket() as held:  # chasquid cannot listen where this socket is bound
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        box.commit({CONF_PATH: box.conf(smtp_address=f"127.0.0.1:{port}")}, "A taken port")

        done = box.gm("apply")

    assert done.code == 1
    restored = "The server was restored to its previous configuration and passes its probes."
    assert restored in done.err, done.err
    last = box.history()[0]
    box.assert_untouched(before, "failed", last["reason"])
    assert not LiveDir(box.config_dir, box.state_dir).journal_path.exists()
    assert os.listdir(box.config_dir / ".gitops-mail") == ["checkpoint"]


def _read_only(path: Path) -> bool:
    try:
        (path / ".probe").touch()
    except OSError:
        return True
    (path / ".probe").unlink()
    return False
