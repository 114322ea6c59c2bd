"""A pusher's text never reaches a terminal raw, and a parse error never repeats a secret.

The pusher (a real non-root user, ``support.pusher``) owns the bare repo, so it
can push through the installed hooks or delete them first. Each test tries both:
what the pusher's own ``git push`` shows (pre-receive and post-receive, run as the
pusher), then what root sees once the daemon (run here, as root) has read the
same commit: ``status``, ``history``, ``daemon.json``, the log, ``validate``
and ``plan``. No chasquid is needed: the revisions are invalid, so nothing
reaches the config dir.

The hooks run as the pusher, with an interpreter the pusher can run
(``support.hostpython``: this machine's virtualenv lives under /root).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from support.hostpython import open_python
from support.pusher import Pusher
from support.repo import ALIASES, ALIASES_PATH, CONF_PATH, USERS_PATH, repo_files
from support.wait import poll

from gitops_mail.cli import main as cli
from gitops_mail.core.printable import CONTROLS
from gitops_mail.daemon import status as daemonstatus
from gitops_mail.daemon.worker import Daemon
from gitops_mail.host import settings as hostsettings

FORGED = "remote: applied 0000000: restart, probes ok"
NEWLINE_NAME = f"docs\n{FORGED}"
ESC_NAME = "e\x1b[2K\x1b[1Avil\x9b31m\u202egnp.exe"
ESC_ALIAS = "\x1b]0;owned\x07sales"
SALT = "Q2FsdFNlY3JldDk4NzY1NDMyMQ"  # where a field name belongs in the users file
HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"  # where a number is


@dataclass
class Said:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass
class Scene:
    """The pusher's repo and clone, and root's host: settings, state dir, config dir."""

    pusher: Pusher
    repo: Path
    work: Path
    host: Path  # root's, 0755: the hooks (run as the pusher) read the settings here

    @property
    def settings(self) -> Path:
        return self.host / "gitops-mail.yaml"

    @property
    def state_dir(self) -> Path:
        return self.host / "state"

    def commit(self, files: Mapping[str, bytes | str | None]) -> str:
        return self.pusher.commit(self.work, files, "change")

    def push(self) -> subprocess.CompletedProcess[str]:
        return self.pusher.push(self.work, check=False)

    def gm(self, *argv: str) -> Said:
        """``gitops-mail ARGV`` as root, in this process."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["--config", str(self.settings), *argv])
        return Said(code, out.getvalue(), err.getvalue())

    def drop_hooks(self, *names: str) -> None:
        """The pusher owns the repo: it can take the checks away."""
        for name in names or ("pre-receive", "post-receive"):
            self.pusher.run(["rm", "-f", str(self.repo / "hooks" / name)])

    def daemon_json(self) -> str:
        return (self.state_dir / daemonstatus.STATUS_FILE).read_text()


@pytest.fixture
def scene(pusher: Pusher) -> Iterator[Scene]:
    repo = pusher.bare_repo()
    work = pusher.clone(repo)
    pusher.commit(work, repo_files(), "base")
    pusher.push(work)
    host = Path(tempfile.mkdtemp(prefix="gitops-hygiene-", dir="/tmp"))
    host.chmod(0o755)
    (host / "etc" / "chasquid").mkdir(parents=True)
    made = Scene(pusher, repo, work, host)
    made.settings.write_text(
        f"repo: {repo}\nbranch: main\nstate_dir: {made.state_dir}\n"
        f"commit_back: false\nchasquid:\n  config_dir: {host / 'etc' / 'chasquid'}\n"
        "  service: supervise\n"
    )
    made.settings.chmod(0o644)
    with pytest.MonkeyPatch.context() as patch:  # the interpreter the hooks record
        patch.setattr(sys, "executable", str(open_python(host)))
        installed = made.gm("hooks", "install", str(repo), "--timeout", "30")
    assert installed.code == 0, installed.text
    yield made
    shutil.rmtree(host, ignore_errors=True)


@contextlib.contextmanager
def running_daemon(scene: Scene) -> Iterator[list[dict[str, Any]]]:
    """The daemon, as root, with its log events; stopped at the end of the block."""
    with capture_logs() as events, daemonstatus.hold_pid_file(scene.state_dir):
        daemon = Daemon(hostsettings.load(str(scene.settings)))
        daemon.start()
        try:
            poll(lambda: passes(scene) >= 1, 30, "the daemon's first pass")
            yield events
        finally:
            daemon.stop()


def passes(scene: Scene) -> int:
    return int((daemonstatus.read_status(scene.state_dir) or {}).get("passes", 0))


def remote_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """What the hooks printed to the pusher, without git's ``remote: `` prefix."""
    lines = done.stderr.splitlines()
    return [line.removeprefix("remote: ").rstrip() for line in lines if line.startswith("remote:")]


def assert_nothing_raw(text: str) -> None:
    """No control character but line breaks, and no line that a name made up."""
    raw = sorted({repr(m.group()) for m in CONTROLS.finditer(text) if m.group() != "\n"})
    assert raw == [], f"raw control characters {raw} in:\n{text}"
    lines = [line.removeprefix("remote: ").strip() for line in text.splitlines()]
    assert not [line for line in lines if line.startswith(("applied", FORGED))], text


def push_past_the_checks(scene: Scene, files: Mapping[str, bytes | str | None]) -> list[str]:
    """With the daemon running: pre-receive dropped, push, post-receive reports (as the
    pusher); the pusher's view of the daemon's result."""
    scene.drop_hooks("pre-receive")
    revision = scene.commit(files)
    done = scene.push()
    assert done.returncode == 0, done.stderr
    said = remote_lines(done)
    assert said[0] == f"gitops-mail: waiting up to 30 s for the daemon to apply {revision[:7]}"
    assert said[1].startswith(f"invalid {revision[:7]}: revision {revision[:7]} is invalid")
    return said


# --- control characters ------------------------------------------------------------------

FORGED_FILES = {
    f"{NEWLINE_NAME}": "x\n",
    f"{ESC_NAME}": "x\n",
    ALIASES_PATH: f"postmaster: owner@gmail.com\n{ESC_ALIAS}: owner@gmail.com\n",
}


def test_a_pushers_forged_names_reach_no_terminal_raw(scene: Scene) -> None:
    before = scene.pusher.git(scene.repo, "rev-parse", "main").stdout
    scene.commit(FORGED_FILES)

    refused = scene.push()

    assert refused.returncode != 0
    said = "\n".join(remote_lines(refused))
    assert_nothing_raw(refused.stderr)
    assert "docs\\nremote: applied 0000000: restart, probes ok: error: path component" in said
    assert "e\\x1b[2K\\x1b[1Avil\\x9b31m\\u202egnp.exe: error: path component" in said
    assert scene.pusher.git(scene.repo, "rev-parse", "main").stdout == before

    with running_daemon(scene) as events:  # the first problem is now the newline's
        said_later = push_past_the_checks(scene, {ALIASES_PATH: ALIASES})
        poll(lambda: passes(scene) >= 2, 30, "the daemon's pass at the forged commit")
        status = scene.gm("status")  # with the daemon's last pass, every problem in it
    assert_nothing_raw("\n".join(said_later))
    assert "nothing was changed: docs\\nremote: applied 0000000: restart" in said_later[1]

    history = scene.gm("history")
    for text in (status.text, history.text):
        assert_nothing_raw(text)
        assert "docs\\nremote: applied 0000000: restart, probes ok" in text
    [last_pass] = [line for line in status.out.splitlines() if "daemon:   last pass" in line]
    assert "docs\\nremote: applied 0000000: restart, probes ok" in last_pass
    assert last_pass.endswith(
        "… (all of it: gitops-mail history --revision " + f"{said_later[1][8:15]})"
    )
    assert "e\\x1b[2K\\x1b[1Avil\\x9b31m\\u202egnp.exe: error: path component" in history.text
    assert_nothing_raw(scene.daemon_json())  # JSON: escaped by json.dumps itself
    assert any(e.get("event") == "reconcile.refused" for e in events)
    for found in (scene.gm("validate", "--repo", str(scene.repo), "--rev", "main"),):
        assert found.code == 1
        assert_nothing_raw(found.text)


def test_forged_names_in_every_plan_format_and_in_errors(scene: Scene) -> None:
    scene.commit(FORGED_FILES)
    scene.drop_hooks()
    assert scene.push().returncode == 0
    for fmt in ("text", "markdown", "json"):
        plan = scene.gm("plan", "--repo", str(scene.repo), "--rev", "main", "--format", fmt)
        assert plan.code in (1, 2), plan.text
        assert_nothing_raw(plan.text)
    applied = scene.gm("apply")
    assert applied.code == 1
    assert_nothing_raw(applied.text)
    assert "docs\\nremote: applied 0000000" in applied.err


# --- secrets in parse errors ---------------------------------------------------------------

USERS_WITH_A_SECRET = (
    'users: {\n  key: "ana"\n  '
    + SALT
    + ": {\n    scrypt: {logN: 14 r: 8 p: 1 keyLen: 32}\n  }\n}\n"
)
CONF_WITH_A_SECRET = f'hostname: "mail.example.com"\nmax_data_size_mb: {HASH}\n'
SECRET_FILES = {USERS_PATH: USERS_WITH_A_SECRET, CONF_PATH: CONF_WITH_A_SECRET}


def assert_no_secret(text: str) -> None:
    for secret in (SALT, HASH):
        pieces = {secret[i : i + 6] for i in range(len(secret) - 5)}
        assert not [p for p in pieces if p in text], f"{secret} in:\n{text}"


def test_a_secret_in_a_parse_error_reaches_no_output(scene: Scene) -> None:
    scene.commit(SECRET_FILES)

    refused = scene.push()

    assert refused.returncode != 0
    assert_no_secret(refused.stderr)
    said = remote_lines(refused)
    assert (
        f"{USERS_PATH}:3:3: error: cannot parse users file: unknown field (here: key, value)"
        in said
    )
    assert f"{CONF_PATH}:2:19: error: syntax error: expected a number for max_data_size_mb" in said

    with running_daemon(scene) as events:
        said_later = push_past_the_checks(scene, {})
        poll(lambda: passes(scene) >= 2, 30, "the daemon's pass at the commit")
    assert_no_secret("\n".join(said_later))
    assert_no_secret(repr(events))
    assert any(e.get("event") == "reconcile.refused" for e in events)
    assert_no_secret(scene.daemon_json())
    for argv in (
        ("status",),
        ("status", "--format", "json"),
        ("history",),
        ("history", "--format", "json"),
    ):
        assert_no_secret(scene.gm(*argv).text)
    for fmt in ("text", "json"):
        found = scene.gm("validate", "--repo", str(scene.repo), "--rev", "main", "--format", fmt)
        assert found.code == 1
        assert_no_secret(found.text)
    for fmt in ("text", "markdown", "json"):
        plan = scene.gm("plan", "--repo", str(scene.repo), "--rev", "main", "--format", fmt)
        assert "max_data_size_mb" in plan.text
        assert_no_secret(plan.text)
    with capture_logs() as applying:
        applied = scene.gm("apply")
    assert applied.code == 1
    assert_no_secret(applied.text + repr(applying))


def test_the_state_files_hold_no_secret_either(scene: Scene) -> None:
    scene.commit(SECRET_FILES)
    scene.drop_hooks()
    assert scene.push().returncode == 0
    assert scene.gm("apply").code == 1
    for name in os.listdir(scene.state_dir):
        path = scene.state_dir / name
        if path.is_file():
            assert_no_secret(path.read_text(errors="replace"))
    assert json.loads((scene.state_dir / "state.json").read_text())
