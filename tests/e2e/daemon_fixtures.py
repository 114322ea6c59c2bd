"""Fixtures for the daemon's end-to-end tests (a pytest plugin, with ``apply_fixtures``).

``start_daemon(box, **env) -> Daemon`` runs ``gitops-mail daemon`` as a child
process (as systemd would) on a ``Sandbox``; its JSON log lines are read back
with ``Daemon.events``. ``attempt`` waits for an attempt in ``history``.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("apply_fixtures")

from apply_fixtures import (  # noqa: E402 - after the assertion rewrite is registered
    ALIASES_PATH,
    BASE_ALIASES,
    DOMAIN,
    GITOPS_MAIL,
    Sandbox,
    poll,
)

from gitops_mail.daemon import status as daemonstatus  # noqa: E402

DAEMON = [*GITOPS_MAIL, "daemon"]
SALES = f"sales@{DOMAIN}"


@dataclass
class Daemon:
    """One ``gitops-mail daemon`` child; its JSON log lines in ``log``."""

    box: Sandbox
    child: subprocess.Popen[bytes]
    log: Path

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                if name is None or event["event"] == name:
                    found.append(event)
        return found

    def status(self) -> dict[str, Any]:
        return daemonstatus.read_status(self.box.state_dir) or {}

    def ready(self) -> None:
        """Wait for the end of the first pass (what READY=1 tells systemd)."""
        poll(lambda: self.status().get("passes", 0) >= 1 or self.ended(), 20, "the first pass")
        assert self.child.poll() is None, self.log.read_text()

    def ended(self) -> bool:
        return self.child.poll() is not None

    def signal(self, signum: int) -> None:
        self.child.send_signal(signum)

    def stop(self) -> int:
        self.child.send_signal(signal.SIGTERM)
        return self.child.wait(timeout=60)


StartDaemon = Callable[..., Daemon]


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[StartDaemon]:
    """``start_daemon(box, **env) -> Daemon``; every daemon still running is killed at the end."""
    started: list[Daemon] = []

    def start(box: Sandbox, **env: str) -> Daemon:
        log = tmp_path / f"daemon-{len(started)}.log"
        with log.open("wb") as out:
            child = subprocess.Popen(
                DAEMON, env=box.env(**env), stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        started.append(Daemon(box, child, log))
        return started[-1]

    yield start
    for daemon in started:
        if daemon.child.poll() is None:
            daemon.child.kill()
        daemon.child.wait(timeout=30)


def attempt(box: Sandbox, revision: str, result: str = "applied") -> dict[str, Any]:
    """Wait until the newest attempt at ``revision`` has ``result``; that attempt."""

    def newest() -> dict[str, Any] | None:
        found = [a for a in box.history() if a["revision"] == revision]
        return found[0] if found and found[0]["result"] == result else None

    found: dict[str, Any] = poll(newest, 20, f"{revision[:7]} {result}")
    return found


def aliases(extra: str) -> dict[str, str]:
    return {ALIASES_PATH: BASE_ALIASES + extra}
