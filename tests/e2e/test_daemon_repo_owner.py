"""The daemon, as root, on a conf repo that belongs to the user who pushes to it.

As on a server: the bare repo is the pusher's (a real non-root user, who
commits and pushes through ``runuser``), the daemon and the command line run
as root, and chasquid is real. The pusher's pushes keep working whatever the
daemon commits back, and nothing the pusher plants in the repo (hooks, config
naming a program, a remote with its own upload-pack) ever runs as root.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

pytest.register_assert_rewrite("apply_fixtures", "daemon_fixtures")

from apply_fixtures import (  # noqa: E402 - after the assertion rewrite is registered
    ALIASES_PATH,
    BASE_ALIASES,
    DOMAIN,
    MANIFEST_PATH,
    MakeSandbox,
    Sandbox,
    poll,
)
from daemon_fixtures import SALES, StartDaemon, aliases, attempt  # noqa: E402
from support.pusher import (  # noqa: E402
    Pusher,
    PusherCheckout,
    not_owned_by,
    pusher_conf_repo,
)

pytest_plugins = ["apply_fixtures", "daemon_fixtures"]
pytestmark = [pytest.mark.netns, pytest.mark.chasquid]

BOT = "gitops-mail"
HOOKS = (
    "reference-transaction",
    "post-index-change",
    "post-update",
    "pre-push",
    "post-commit",
    "pre-auto-gc",
    "fsmonitor-watchman",
    "pre-receive",
    "post-receive",
)
RECORDER = '#!/bin/sh\necho "$(basename "$0") $(id -u)" >>{marks}\nexit {code}\n'


@pytest.fixture
def conf_repo(pusher: Pusher) -> tuple[PusherCheckout, PusherCheckout]:
    """The sandbox's bare repo and clone, owned by the pusher (overrides apply_fixtures')."""
    return pusher_conf_repo(pusher)


class Recorder:
    """A program planted by the pusher that appends ``NAME UID`` to its marks when run."""

    def __init__(self, pusher: Pusher) -> None:
        self.pusher = pusher
        self.marks = pusher.root / "marks"
        pusher.write(self.marks, "", mode=0o666)  # root's runs may append too
        self.program = pusher.root / "recorder"
        self.plant(self.program, code=1)

    def plant(self, path: Path, code: int = 0) -> None:
        script = RECORDER.format(marks=shlex.quote(str(self.marks)), code=code)
        self.pusher.write(path, script, mode=0o755)

    def as_root(self) -> list[str]:
        return [line for line in self.marks.read_text().splitlines() if line.endswith(" 0")]

    def uids(self) -> set[str]:
        return {line.rpartition(" ")[2] for line in self.marks.read_text().splitlines()}


def main(repo: PusherCheckout) -> str:
    return repo.git("rev-parse", "main").strip()


def committed_back(repo: PusherCheckout, revision: str) -> str:
    """Wait for the daemon's commit on top of ``revision`` in ``repo``; its id."""
    own = poll(lambda: main(repo) if main(repo) != revision else None, 20, "the commit-back")
    author, parent = repo.git("log", "-1", "--format=%an %P", own).split()
    assert (author, parent) == (BOT, revision)
    return own


def with_dmarc(box: Sandbox, percent: int) -> dict[str, str]:
    """The manifest, its domain publishing DMARC for ``percent`` %: a new zone file."""
    domain = f"  {DOMAIN}: {{dmarc: {{p: none, pct: {percent}}}}}\n"
    return {MANIFEST_PATH: box.manifest().replace(f"  {DOMAIN}: {{}}\n", domain)}


# --- commit-back ------------------------------------------------------------------------


def test_pushes_by_the_owner_keep_working_through_the_daemons_commits(
    make_sandbox: MakeSandbox, start_daemon: StartDaemon, pusher: Pusher
) -> None:
    box = make_sandbox()
    box.write_host(commit_back=True)
    daemon = start_daemon(box)
    daemon.ready()
    committed_back(box.origin, box.tip())  # the base's zone

    for percent in (10, 20, 30, 40, 50):
        box.workdir.sync()
        files = {**with_dmarc(box, percent), **aliases(f"sales{percent}: ana\n")}
        revision = box.commit(files, f"sales{percent}, and dmarc for {percent} %")  # pushed

        attempt(box, revision)
        own = committed_back(box.origin, revision)
        zone = box.origin.git("show", f"{own}:dns/{DOMAIN}.zone")
        assert f"pct={percent}" in zone
        assert box.rcpt(f"sales{percent}@{DOMAIN}") == 250

    assert list(not_owned_by(box.origin.path, pusher.uid)) == []
    assert daemon.stop() == 0


# --- nothing the pusher plants runs as root ---------------------------------------------


def test_hooks_planted_in_the_repo_never_run_as_root(
    make_sandbox: MakeSandbox, start_daemon: StartDaemon, pusher: Pusher
) -> None:
    box = make_sandbox()
    recorder = Recorder(pusher)
    for name in HOOKS:
        recorder.plant(box.origin.path / "hooks" / name)
    box.write_host(commit_back=True)
    daemon = start_daemon(box)
    daemon.ready()
    committed_back(box.origin, box.tip())
    assert recorder.as_root() == []  # the daemon's first pass and commit-back ran none
    box.workdir.sync()

    revision = box.commit({**aliases("sales: ana\n"), **with_dmarc(box, 10)}, "sales, dmarc")
    attempt(box, revision)
    committed_back(box.origin, revision)
    status = box.gm("status")

    assert status.code == 0, status.err
    assert box.rcpt(SALES) == 250
    assert recorder.as_root() == []
    assert recorder.uids() == {str(pusher.uid)}  # they are live: the pusher's own push ran them
    assert daemon.stop() == 0


def test_fsmonitor_of_a_checkout_never_runs_as_root(
    make_sandbox: MakeSandbox, start_daemon: StartDaemon, pusher: Pusher
) -> None:
    box = make_sandbox()
    work = box.workdir
    recorder = Recorder(pusher)
    work.git("config", "core.fsmonitor", str(recorder.program))
    box.write_host(commit_back=True)
    box.host_file.write_text(
        box.host_file.read_text().replace(f"repo: {box.origin.path}", f"repo: {work.path}")
    )
    base = box.tip()
    daemon = start_daemon(box)
    daemon.ready()
    committed_back(work, base)  # commit-back into the checkout's branch (HEAD moves too)
    assert recorder.as_root() == []  # its scratch index asked no fsmonitor
    work.git("reset", "--quiet", "--hard", "main")  # the checkout catches up with its branch

    local = work.commit({**aliases("sales: ana\n"), **with_dmarc(box, 10)}, "on the host")
    attempt(box, local)
    committed_back(work, local)

    assert recorder.as_root() == []
    assert recorder.uids() == {str(pusher.uid)}  # the pusher's own commit asked it
    assert daemon.stop() == 0


def poll_mode(box: Sandbox, mirror: Path, remote: str) -> None:
    """Host settings that fetch ``remote`` into ``mirror`` and commit back there."""
    box.write_host(commit_back=True)
    text = box.host_file.read_text().replace(f"repo: {box.origin.path}", f"repo: {mirror}")
    box.host_file.write_text(text + f"remote: {remote}\npoll_interval: 0.2\n")


def test_poll_mode_with_the_owners_mirror_never_runs_its_remotes_programs(
    make_sandbox: MakeSandbox, start_daemon: StartDaemon, pusher: Pusher
) -> None:
    box = make_sandbox()
    mirror = pusher.root / "mirror.git"
    pusher.git(pusher.root, "clone", "--quiet", "--bare", str(box.origin.path), str(mirror))
    recorder = Recorder(pusher)
    for key in ("uploadpack", "receivepack"):  # its remote "origin", named in the settings
        pusher.git(mirror, "config", f"remote.origin.{key}", str(recorder.program))
    poll_mode(box, mirror, "origin")
    daemon = start_daemon(box)
    daemon.ready()
    committed_back(box.origin, box.tip())  # fetched, applied, committed and pushed back
    box.workdir.sync()

    revision = box.commit(aliases("sales: ana\n"), "sales")  # pushed to the remote only

    attempt(box, revision)
    assert box.rcpt(SALES) == 250
    assert recorder.marks.read_text() == ""
    assert list(not_owned_by(mirror, pusher.uid)) == []
    assert daemon.stop() == 0


def test_poll_mode_ssh_is_this_hosts_not_the_repos(
    make_sandbox: MakeSandbox, start_daemon: StartDaemon, pusher: Pusher
) -> None:
    box = make_sandbox()
    mirror = pusher.root / "mirror.git"
    pusher.git(pusher.root, "clone", "--quiet", "--bare", str(box.origin.path), str(mirror))
    recorder = Recorder(pusher)
    pusher.git(mirror, "config", "core.sshCommand", str(recorder.program))
    poll_mode(box, mirror, "ssh://127.0.0.1/srv/mail-conf.git")  # no SSH server listens
    daemon = start_daemon(box)
    daemon.ready()

    retry = poll(lambda: daemon.events("pass.retry"), 20, "a failed fetch")[0]

    assert "git fetch of main from ssh://127.0.0.1/srv/mail-conf.git failed" in retry["error"]
    assert "port 22: Connection refused" in retry["error"]  # ssh's own words
    assert recorder.marks.read_text() == ""
    assert daemon.stop() == 0


# --- the command line as root -----------------------------------------------------------


def test_the_command_line_as_root_on_the_pushers_repo(
    make_sandbox: MakeSandbox, pusher: Pusher
) -> None:
    box = make_sandbox()
    base = box.tip()
    repo = str(box.origin.path)

    assert box.gm("apply").code == 0
    revision = box.commit(aliases("sales: ana\n"), "sales")
    plan = box.gm("plan", "--live", "--repo", repo, "--rev", "main")
    assert (plan.code, plan.err) == (2, "")
    assert f"+ alias {SALES} -> " in plan.out
    applied = box.gm("apply")
    assert (applied.code, applied.err) == (0, "")
    assert box.rcpt(SALES) == 250

    rolled = box.gm("rollback", "--to", base[:10])
    status = box.gm("status")

    assert (rolled.code, rolled.err) == (0, "")
    assert box.rcpt(SALES) == 550
    assert (status.code, status.err) == (0, "")
    assert f"live:     {base[:7]}" in status.out
    assert revision[:7] in status.out
    assert box.workdir.git("show", f"main:{ALIASES_PATH}") == BASE_ALIASES + "sales: ana\n"
    assert list(not_owned_by(box.origin.path, pusher.uid)) == []
