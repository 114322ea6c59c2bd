"""``gitops-mail deploy`` against real sshd "hosts" on loopback (see deploy_fixtures.py).

The deployed daemon is started by the fake systemctl from the unit deploy
installed, so what runs is what a host would run: the unit's ExecStart, the
link it names, the venv made from the uploaded wheels, the host settings
deploy wrote (``service: supervise``: the fake's chasquid sockets start
``gitops-mail supervise``, standing in for socket-activated chasquid).
"""

from __future__ import annotations

import pwd
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["apply_fixtures", "deploy_fixtures"]

from deploy_fixtures import ALIASES, PUSHER, REPO, SETTINGS, World  # noqa: E402

RCPT = """
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="client.test", timeout=10) as s:
    s.ehlo(); s.mail("<>"); print(s.rcpt(sys.argv[2])[0])
"""


def rcpt(host: Any, port: int, address: str) -> str:
    done = host.in_netns([sys_python(), "-c", RCPT, str(port), address])
    return done.stdout.strip() or done.stderr


def sys_python() -> str:
    import sys  # noqa: PLC0415

    return sys.executable


def test_first_deploy_then_no_change_then_a_push_goes_live(
    deploy_world: World, workdir: Any, users_files: Any, tls_cert: Any
) -> None:
    host = deploy_world.add_host()
    conf = deploy_world.conf_repo(workdir, users_files.ana, tls_cert())
    first = deploy_world.deploy(host.spec, conf=conf)
    print(first.out, first.err)
    assert first.code == 0, first.out + first.err
