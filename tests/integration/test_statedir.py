"""The state dir against another user (issue 9, item 6), each attack made as the real pusher.

gitops-mail runs as root and keeps its lock and records in ``state_dir``; the
push hooks run as the pusher and read two of those records. A hostile umask
must not open the dir; a ``lock`` or ``inventory.json`` someone else put there
is never followed nor believed; the pusher reads exactly what post-receive
needs and nothing else.
"""

from __future__ import annotations

import argparse
import grp
import json
import logging
import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.pusher import Pusher
from support.repo import ALIASES, ALIASES_PATH, repo_files

import gitops_mail
from gitops_mail.cli import hooks
from gitops_mail.cli import main as cli
from gitops_mail.errors import GitopsMailError
from gitops_mail.host import localfs
from gitops_mail.host.livefs.configdir import LiveDir
from gitops_mail.host.lock import state_lock

REVISION = "a" * 40
PLANTED_HINT = (
    "gitops-mail never follows a symlink there, nor uses another user's file: "
    "remove it (someone may have put it there to make root write elsewhere), then run again"
)
TAMPERED_HINT = (
    "someone may have tampered with it: check those and remove them, then run gitops-mail "
    "again (it has closed the state dir and repairs the rest itself)"
)

# A first apply and a daemon, as far as the state dir goes: the lock, the record, the
# certificate sources, the unproven mark, the daemon's status and pid file.
FIRST_APPLY = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from gitops_mail.apply.stilllive import record_sources
from gitops_mail.apply.store import Attempt, StateStore, Unproven
from gitops_mail.daemon.status import StatusFile, hold_pid_file
from gitops_mail.host.lock import state_lock

state, revision = Path(sys.argv[1]), sys.argv[2]
started = datetime.now(UTC).isoformat(timespec="seconds")
with state_lock(state):
    Unproven.of(state).mark(revision)
    StateStore(state).record(
        Attempt(revision, started, "applied", summary="1 alias added", action="restart"),
        applied=revision,
    )
    record_sources(state, [])
with hold_pid_file(state):
    StatusFile(state).update(state="idle")
"""


# --- helpers ---------------------------------------------------------------------------


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A directory of root's that every user can search, as /var/lib is (0755)."""
    path = Path(tempfile.mkdtemp(prefix="gitops-host-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_root_under_umask_000(state: Path, revision: str = REVISION) -> None:
    """``FIRST_APPLY`` in a process whose umask is 000."""
    subprocess.run(
        [sys.executable, "-c", FIRST_APPLY, str(state), revision],
        umask=0,
        check=True,
        capture_output=True,
        timeout=60,
    )


def modes(state: Path) -> dict[str, str]:
    """``name: "mode owner:group"`` of the state dir (``.``) and every entry in it."""
    found = {".": _mode(state)}
    for path in sorted(state.iterdir()):
        found[path.name] = _mode(path)
    return found


def _mode(path: Path) -> str:
    info = path.lstat()
    owner = pwd.getpwuid(info.st_uid).pw_name
    group = grp.getgrgid(info.st_gid).gr_name
    return f"{stat.S_IMODE(info.st_mode):04o} {owner}:{group}"


def left_by_an_old_version(state: Path) -> None:
    """What gitops-mail made before under umask 000: a 0777 state dir, a 0666 log."""
    state.mkdir()
    state.chmod(0o777)
    for name, mode in (("lock", 0o600), ("state.json", 0o644), ("chasquid.log", 0o666)):
        (state / name).write_text("{}\n" if name.endswith(".json") else "")
        (state / name).chmod(mode)
    (state / "inventory.json").write_text(json.dumps({"files": {"chasquid.conf": "0" * 64}}))
    (state / "inventory.json").chmod(0o600)


def denied(pusher: Pusher, *argv: str | Path) -> str:
    """Run ``argv`` as the pusher; it must fail. Its standard error."""
    done = pusher.run(list(argv), check=False)
    assert done.returncode != 0, (argv, done.stdout)
    return done.stderr


# --- a hostile umask ---------------------------------------------------------------------


def test_a_first_apply_under_umask_000_leaves_nothing_open(pusher: Pusher, host_dir: Path) -> None:
    state = host_dir / "var" / "lib" / "gitops-mail"

    as_root_under_umask_000(state)

    assert modes(state) == {
        ".": "0700 root:root",
        "daemon.json": "0640 root:root",
        "lock": "0600 root:root",
        "sources.json": "0600 root:root",
        "state.json": "0640 root:root",
        "unproven": "0600 root:root",
    }
    assert [_mode(host_dir / "var"), _mode(host_dir / "var" / "lib")] == ["0755 root:root"] * 2
    assert "Permission denied" in denied(pusher, "ls", state)
    assert "Permission denied" in denied(pusher, "cat", state / "state.json")
    assert "Permission denied" in denied(pusher, "ln", "-sf", "/tmp/elsewhere", state / "lock")
    assert "Permission denied" in denied(pusher, "touch", state / "inventory.json")


def test_files_get_their_modes_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        localfs.atomic_write(tmp_path / "private", b"x", mode=0o600)
        localfs.atomic_write(tmp_path / "plain", b"x")
        os.close(localfs.open_own(tmp_path / "log", os.O_WRONLY | os.O_APPEND, 0o600))
        with state_lock(tmp_path / "state"):
            pass
    finally:
        os.umask(old)
    assert {p.name: _mode(p) for p in sorted(tmp_path.iterdir())} == {
        "log": "0600 root:root",
        "plain": "0644 root:root",
        "private": "0600 root:root",
        "state": "0700 root:root",
    }
    assert _mode(tmp_path / "state" / "lock") == "0600 root:root"


# --- a lock that is not ours -----------------------------------------------------------


def test_a_symlinked_lock_in_an_open_state_dir_is_refused_and_its_target_never_made(
    pusher: Pusher, host_dir: Path
) -> None:
    state = host_dir / "state"
    left_by_an_old_version(state)
    target = pusher.root / "made-by-root"
    pusher.run(["ln", "-sf", target, state / "lock"])  # the old 0777 dir let the pusher do it

    with pytest.raises(GitopsMailError) as caught, state_lock(state):
        pytest.fail("locked through the pusher's symlink")

    assert caught.value.message == (
        f"the state dir {state} was open to other users (mode 0777) and holds what "
        "gitops-mail did not make: lock (a symbolic link)"
    )
    assert caught.value.hint == TAMPERED_HINT
    assert not os.path.lexists(target)
    assert _mode(state) == "0700 root:root"  # closed at once
    assert "Permission denied" in denied(pusher, "ln", "-sf", target, state / "state.json")
    # Once root has looked and removed it, the next apply repairs the rest.
    (state / "lock").unlink()
    with state_lock(state):
        pass
    assert modes(state) == {
        ".": "0700 root:root",
        "chasquid.log": "0600 root:root",
        "inventory.json": "0600 root:root",
        "lock": "0600 root:root",
        "state.json": "0640 root:root",
    }


@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "another user's file"])
def test_a_lock_that_is_not_ours_is_never_used(pusher: Pusher, tmp_path: Path, kind: str) -> None:
    state = tmp_path / "state"
    with state_lock(state):
        pass
    lock, target = state / "lock", tmp_path / "target"
    lock.unlink()
    if kind == "another user's file":
        lock.write_text("")
        os.chown(lock, pusher.uid, pusher.gid)
        why = f"it belongs to uid {pusher.uid}, not to root"
    else:
        if kind == "symlink":
            target.write_text("keep me\n")
        lock.symlink_to(target)
        why = "it is a symbolic link"

    with pytest.raises(GitopsMailError) as caught, state_lock(state):
        pytest.fail("locked a file that is not ours")

    assert caught.value.message == f"cannot open the state lock {lock}: {why}"
    assert caught.value.hint == PLANTED_HINT
    assert (target.read_text() if kind == "symlink" else os.path.lexists(target)) in (
        "keep me\n",
        False,
    )


# --- a record that is not ours -------------------------------------------------------------


def test_a_replaced_inventory_is_not_believed(
    pusher: Pusher, host_dir: Path, origin, capsys
) -> None:
    state, config_dir = host_dir / "state", host_dir / "chasquid"
    config_dir.mkdir()
    left_by_an_old_version(state)
    inventory = state / "inventory.json"
    pusher.run(["rm", "-f", inventory])
    pusher.write(inventory, json.dumps({"files": {}}))  # "gitops-mail manages nothing here"
    settings = host_dir / "gitops-mail.yaml"
    settings.write_text(
        f"repo: {origin.path}\nstate_dir: {state}\nchasquid:\n  config_dir: {config_dir}\n"
    )

    with pytest.raises(GitopsMailError) as caught:
        LiveDir(config_dir, state).inventory()
    assert caught.value.message == (
        f"cannot read {inventory}: it belongs to uid {pusher.uid}, not to root"
    )
    assert cli.main(["--config", str(settings), "status"]) == 1
    assert f"cannot read {inventory}: it belongs to uid {pusher.uid}" in capsys.readouterr().err
    with pytest.raises(GitopsMailError) as refused, state_lock(state):
        pytest.fail("an apply went on with the pusher's inventory")
    assert refused.value.message == (
        f"the state dir {state} was open to other users (mode 0777) and holds what "
        f"gitops-mail did not make: inventory.json (belongs to uid {pusher.uid})"
    )


def test_a_replaced_state_file_is_not_believed(pusher: Pusher, tmp_path: Path) -> None:
    from gitops_mail.apply.store import StateStore  # noqa: PLC0415 - the code under test

    state = tmp_path / "state"
    as_root_under_umask_000(state)
    record = state / "state.json"
    record.unlink()
    pusher.write(record, json.dumps({"applied": "b" * 40, "history": []}))
    with pytest.raises(GitopsMailError) as caught:
        StateStore(state).load()
    assert caught.value.message == (
        f"cannot read {record}: it belongs to uid {pusher.uid}, not to root"
    )


# --- a state dir another user could swap ----------------------------------------------------


def test_a_state_dir_inside_the_pushers_directory_is_refused(pusher: Pusher) -> None:
    state = pusher.root / "state"
    with pytest.raises(GitopsMailError) as caught, state_lock(state):
        pytest.fail("locked in a directory the pusher owns")
    assert caught.value.message == (
        f"the state dir {state} is inside {pusher.root}, which belongs to uid {pusher.uid}"
    )
    assert caught.value.hint == (
        "keep state_dir in a directory only root can write, such as /var/lib"
    )
    assert not state.exists()


def test_a_state_dir_of_another_user_is_refused(pusher: Pusher, host_dir: Path) -> None:
    state = host_dir / "state"
    state.mkdir(mode=0o700)
    os.chown(state, pusher.uid, pusher.gid)
    with pytest.raises(GitopsMailError) as caught, state_lock(state):
        pytest.fail("locked in the pusher's state dir")
    assert caught.value.message == (
        f"the state dir {state} belongs to uid {pusher.uid}, not to root"
    )
    assert caught.value.hint == (
        "gitops-mail trusts only a state dir of its own: check what is in it, then "
        f"`chown root: {state}` and `chmod 0700 {state}`"
    )
    assert os.listdir(state) == []


def test_a_state_dir_an_older_version_left_readable_is_closed(tmp_path: Path, caplog) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    for name in ("state.json", "daemon.json", "daemon.pid", "supervisor.lock", "chasquid.log"):
        (state / name).write_text("")
        (state / name).chmod(0o644)
    caplog.set_level(logging.WARNING, logger="gitops_mail")

    with state_lock(state):
        pass

    assert modes(state) == {
        ".": "0700 root:root",
        "chasquid.log": "0600 root:root",
        "daemon.json": "0640 root:root",
        "daemon.pid": "0600 root:root",
        "lock": "0600 root:root",
        "state.json": "0640 root:root",
        "supervisor.lock": "0600 root:root",
    }
    assert [r.getMessage() for r in caplog.records] == [
        f"the state dir {state} had mode 0755; it is 0700 now"
    ]


# --- what the pusher may read: the result of a push -----------------------------------------


def hook_interpreter(where: Path) -> Path:
    """A Python the pusher can run, with gitops-mail and its dependencies.

    The virtualenv's interpreter lives where only root can reach it here; the
    system's own Python of the same version reads the same packages.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = Path("/usr/bin") / version
    if not system.exists():
        pytest.skip(f"no {system} for the pusher's hooks")
    paths = sysconfig.get_paths()
    source = Path(gitops_mail.__file__).parents[1]
    path = ":".join([str(source), paths["purelib"], paths["platlib"]])
    script = where / "python"
    script.write_text(f'#!/bin/sh\nPYTHONPATH="{path}" exec {system} "$@"\n')
    script.chmod(0o755)
    return script


class DaemonUnderUmask000(threading.Thread):
    """Records the result of ``revision`` (in a process whose umask is 000) once main has it."""

    def __init__(self, repo: Path, state: Path, revision: str) -> None:
        super().__init__(daemon=True)
        self.repo, self.state, self.revision = repo, state, revision

    def run(self) -> None:
        ref = self.repo / "refs" / "heads" / "main"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if ref.exists() and ref.read_text().strip() == self.revision:
                as_root_under_umask_000(self.state, self.revision)
                return
            time.sleep(0.01)


def test_the_pusher_reads_the_result_of_a_push_and_nothing_else(
    pusher: Pusher, host_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = pusher.bare_repo()
    work = pusher.clone(repo)
    first = pusher.commit(work, repo_files(), "first")
    pusher.push(work)
    state, settings = host_dir / "state", host_dir / "gitops-mail.yaml"
    settings.write_text(f"repo: {repo}\nbranch: main\nstate_dir: {state}\n")
    as_root_under_umask_000(state, first)  # the first apply made the state dir
    monkeypatch.setattr(sys, "executable", str(hook_interpreter(host_dir)))
    install = argparse.Namespace(
        command="hooks", action="install", repo=str(repo), config=str(settings), timeout=30.0,
        force=False,
    )  # fmt: skip
    assert hooks.run(install) == 0
    group = grp.getgrgid(pusher.gid).gr_name
    commit = pusher.commit(work, {ALIASES_PATH: ALIASES + "info: owner@gmail.com\n"}, "info@")
    daemon = DaemonUnderUmask000(repo, state, commit)
    daemon.start()

    pushed = pusher.push(work)

    said = [
        line.removeprefix("remote: ").rstrip()
        for line in pushed.stderr.splitlines()
        if line.startswith("remote: ")
    ]
    assert said == [
        f"main ({commit[:7]}): valid",
        f"gitops-mail: waiting up to 30 s for the daemon to apply {commit[:7]}",
        f"applied {commit[:7]}: restarted chasquid, probes ok (1 alias added)",
    ]
    daemon.join(30)
    assert modes(state) == {
        ".": f"0710 root:{group}",
        "daemon.json": f"0640 root:{group}",
        "lock": "0600 root:root",
        "sources.json": "0600 root:root",
        "state.json": f"0640 root:{group}",
        "unproven": "0600 root:root",
    }
    assert json.loads(pusher.run(["cat", state / "daemon.json"]).stdout)["state"] == "idle"
    assert "Permission denied" in denied(pusher, "ls", state)
    for name in ("lock", "sources.json", "unproven"):
        assert "Permission denied" in denied(pusher, "cat", state / name)
    assert "Permission denied" in denied(pusher, "ln", "-sf", "/tmp/elsewhere", state / "lock")


LOAD = """
import sys
from pathlib import Path
from gitops_mail.apply.store import StateStore
from gitops_mail.errors import GitopsMailError
try:
    StateStore(Path(sys.argv[1])).load()
except GitopsMailError as exc:
    print(exc.message)
    print(exc.hint)
"""


def test_until_hooks_install_shares_it_the_pusher_is_told_how(
    pusher: Pusher, host_dir: Path
) -> None:
    state = host_dir / "state"
    as_root_under_umask_000(state)
    done = pusher.run([hook_interpreter(host_dir), "-c", LOAD, state])
    assert done.stdout == (
        f"cannot read {state}/state.json: Permission denied\n"
        "the push hooks read it as the pushing user: as root, run `gitops-mail hooks install "
        "REPO` to let the repo's group read the results\n"
    )
