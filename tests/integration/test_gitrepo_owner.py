"""git as the repo's owner, with none of the repo's hooks and none of the programs its config names.

The daemon runs as root; the repository it watches belongs to the user who
pushes. Each test plants, as that user (``pusher``) or in a repo of root's
own, a recorder in every place a repository can name a program (hooks,
``core.fsmonitor``, a remote's ``uploadpack``, ``url.<ext::...>.insteadOf``,
credential helpers, ...), then runs gitops-mail's git calls as root: the
recorder must never have run, and whatever git wrote must still be the
owner's.
"""

from __future__ import annotations

import argparse
import http.server
import os
import shlex
import shutil
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.pusher import Pusher, not_owned_by
from support.repo import ALIASES, ALIASES_PATH, repo_files

import gitops_mail
from gitops_mail.cli import hooks
from gitops_mail.errors import GitopsMailError, RepoError
from gitops_mail.git import launch
from gitops_mail.git import plumbing as gitplumbing
from gitops_mail.git import read as gitread
from gitops_mail.git import write as gitwrite
from gitops_mail.host import procs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="root runs git on another user's repo")

BOT = ("gitops-mail", "gitops-mail@localhost")
HOOKS = (
    "reference-transaction",
    "post-index-change",
    "pre-auto-gc",
    "pre-push",
    "pre-commit",
    "commit-msg",
    "post-commit",
    "post-update",
    "pre-receive",
    "post-receive",
    "fsmonitor-watchman",
)
RECORDER = '#!/bin/sh\necho "$(basename "$0") $(id -u)" >>{marks}\nexit {code}\n'


class Recorder:
    """A program that appends ``NAME UID`` to ``marks`` each time it runs (as ``NAME``)."""

    def __init__(self, directory: Path, pusher: Pusher | None = None) -> None:
        self.directory, self.pusher = directory, pusher
        self.marks = directory / "marks"
        self.write(self.marks, "", 0o666)  # the pusher's and root's programs append to it
        self.program = directory / "recorder"
        self.plant(self.program, code=1)

    def plant(self, path: Path, code: int = 0) -> None:
        self.write(path, RECORDER.format(marks=shlex.quote(str(self.marks)), code=code), 0o755)

    def write(self, path: Path, text: str, mode: int) -> None:
        if self.pusher is not None:
            self.pusher.write(path, text, mode=mode)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)

    def hooks(self, git_dir: Path) -> None:
        for name in HOOKS:
            self.plant(git_dir / "hooks" / name)

    def lines(self) -> list[str]:
        return self.marks.read_text().splitlines()


def run(git_dir: Path, *args: str) -> None:
    """``git ARGS`` as root with git's own defaults and no safety of ours (to plant config)."""
    procs.run(["git", "--git-dir", git_dir, *args], env={**os.environ, "LC_ALL": "C"})


def configure(pusher: Pusher, git_dir: Path, *pairs: tuple[str, str]) -> None:
    for key, value in pairs:
        pusher.run(["git", "--git-dir", git_dir, "config", key, value])


def tip(repo: Path) -> str:
    return gitplumbing.resolve_revision(repo, "main")


# --- as the owner -----------------------------------------------------------------------


def test_commits_back_leave_everything_in_the_pushers_repo_the_pushers(pusher: Pusher) -> None:
    repo = pusher.bare_repo()
    work = pusher.clone(repo)
    pusher.commit(work, {"a": "a\n"}, "first")
    pusher.push(work)

    for number in range(6):  # root's commit, then a push of 40 new objects, six times
        files = {f"dns/{number}.zone": f"; zone {number}\n".encode()}
        gitwrite.commit_files(repo, "main", tip(repo), files, "dns", author=BOT)
        pusher.git(work, "pull", "--quiet", "--ff-only", "origin", "main")
        pusher.commit(work, {f"f{number}-{i}": f"{number} {i}\n" for i in range(40)})
        pusher.push(work)  # fails the test if a root-owned objects/xx refuses it

    assert tip(repo) == pusher.git(work, "rev-parse", "HEAD").stdout.strip()
    assert list(not_owned_by(repo, pusher.uid)) == []
    assert [p.name for p in repo.iterdir() if p.name.startswith("gitops-mail-index")] == []


def test_root_runs_none_of_the_pushers_hooks_or_programs(pusher: Pusher) -> None:
    repo = pusher.bare_repo()
    work = pusher.clone(repo)
    first = pusher.commit(work, {"a": "a\n"}, "first")
    pusher.push(work)
    recorder = Recorder(pusher.root, pusher)
    recorder.hooks(repo)
    recorder.hooks(work / ".git")
    configure(pusher, work / ".git", ("core.fsmonitor", str(recorder.program)))

    for where in (repo, work):  # a bare repo, and a checkout (its index asks fsmonitor)
        made = gitwrite.commit_files(where, "main", first, {"dns/x.zone": b"x\n"}, "m", author=BOT)
        assert gitread.read_revision(where, made).data("dns/x.zone") == b"x\n"
        assert gitread.changed_paths(where, first, made) == ["dns/x.zone"]
        assert gitread.merge_base(where, first, made) == first
        assert gitread.commit_author(where, made) == BOT
    assert recorder.lines() == []
    pusher.write(work / "b", "b\n")
    gitwrite.commit_paths(work, ["b"], "b, committed by root in the pusher's checkout")

    assert recorder.lines() == []
    assert list(not_owned_by(pusher.root, pusher.uid)) == []
    pusher.git(repo, "update-ref", "refs/heads/other", first)  # the hooks do run, for git alone
    assert recorder.lines()[-1] == f"reference-transaction {pusher.uid}"


def test_the_owner_of_a_repo_is_that_of_its_git_dir(pusher: Pusher, tmp_path: Path) -> None:
    repo = pusher.bare_repo()
    work = pusher.clone(repo)
    pusher.commit(work, {"sub/a": "a\n"}, "first")
    pusher.git(work, "worktree", "add", "--quiet", str(pusher.root / "linked"))
    owner = procs.Identity(pusher.uid, pusher.gid)

    for where in (repo, work, work / "sub", pusher.root / "linked"):
        assert launch.owner(where) == owner, where
    assert launch.owner(tmp_path) is None  # in no repository: git says so, as root
    root_repo = tmp_path / "mine.git"
    run(root_repo, "init", "--quiet", "--bare")
    assert launch.owner(root_repo) is None


def test_a_git_dir_of_roots_named_by_the_pushers_repo_is_used_as_the_pusher(
    pusher: Pusher,
) -> None:
    repo = pusher.bare_repo()
    roots = pusher.root / "roots.git"  # root's, readable by all
    run(roots, "init", "--quiet", "--bare", "--initial-branch=main")
    empty = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree
    first = procs.run(["git", "--git-dir", roots, "commit-tree", empty, "-m", "x"]).text.strip()
    run(roots, "update-ref", "refs/heads/main", first)
    pusher.run(["ln", "-s", str(roots), str(repo / ".git")])  # git looks at .git first

    assert launch.owner(repo) == procs.Identity(pusher.uid, pusher.gid)
    with pytest.raises(GitopsMailError, match="insufficient permission"):
        gitwrite.commit_files(repo, "main", "main", {"dns/x.zone": b"x\n"}, "m", author=BOT)
    assert tip(roots) == first  # root wrote nothing through the pusher's pointer


# --- hooks and config in any repository, our own included --------------------------------


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    return Recorder(tmp_path)


@pytest.fixture
def seeded(origin, workdir) -> str:
    first = workdir.commit({"a": "a\n"}, "first")
    workdir.push()
    return str(first)


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    path = tmp_path / "mirror.git"
    run(path, "init", "--quiet", "--bare", "--initial-branch=main")
    return path


def test_no_hook_runs_on_any_of_our_calls(origin, workdir, seeded, mirror, recorder) -> None:
    for git_dir in (workdir.path / ".git", mirror):  # origin's are the remote side's own
        recorder.hooks(git_dir)

    assert gitwrite.fetch(mirror, str(origin.path), "main") == seeded
    made = gitwrite.commit_files(mirror, "main", seeded, {"dns/x.zone": b"x\n"}, "m", author=BOT)
    gitwrite.push(mirror, str(origin.path), "main")
    gitwrite.commit_files(workdir.path, "main", seeded, {"dns/y.zone": b"y\n"}, "m", author=BOT)
    (workdir.path / "b").write_text("b\n")
    gitwrite.commit_paths(workdir.path, ["b"], "b")
    gitread.read_revision(origin.path, made)

    assert recorder.lines() == []
    workdir.git("update-ref", "refs/heads/other", seeded)
    assert recorder.lines() == ["reference-transaction 0", "reference-transaction 0"]


def test_fsmonitor_and_signing_named_by_a_checkout_never_run(workdir, seeded, recorder) -> None:
    for key in ("core.fsmonitor", "gpg.program"):
        workdir.git("config", key, str(recorder.program))
    workdir.git("config", "commit.gpgSign", "true")

    made = gitwrite.commit_files(
        workdir.path, "main", seeded, {"dns/x.zone": b"x\n"}, "m", author=BOT
    )

    assert gitread.read_revision(workdir.path, made).data("dns/x.zone") == b"x\n"
    assert recorder.lines() == []


def test_a_remote_named_in_the_repo_cannot_name_programs(origin, seeded, mirror, recorder) -> None:
    program = str(recorder.program)
    run(mirror, "remote", "add", "upstream", str(origin.path))
    run(mirror, "config", "remote.upstream.uploadpack", program)
    run(mirror, "config", "remote.upstream.receivepack", program)
    run(mirror, "config", "push.gpgSign", "true")
    run(mirror, "config", "gpg.program", program)

    assert gitwrite.fetch(mirror, "upstream", "main") == seeded
    made = gitwrite.commit_files(mirror, "main", seeded, {"dns/x.zone": b"x\n"}, "m", author=BOT)
    gitwrite.push(mirror, "upstream", "main")

    assert tip(origin.path) == made
    assert recorder.lines() == []


def test_no_url_rewrite_reaches_a_command_or_a_helper(origin, seeded, mirror, recorder) -> None:
    run(mirror, "config", "protocol.ext.allow", "always")
    run(mirror, "config", f"url.ext::{recorder.program} %S .insteadOf", "ssh://remote.test/")
    run(mirror, "config", "url.evil::x/.insteadOf", "ssh://other.test/")

    for remote, transport in (("ssh://remote.test/x", "ext"), ("ssh://other.test/x", "evil")):
        with pytest.raises(RepoError) as caught:
            gitwrite.fetch(mirror, remote, "main")
        assert f"transport '{transport}' not allowed" in caught.value.message
    assert recorder.lines() == []


def test_an_alternate_cannot_name_a_command(origin, seeded, mirror, recorder) -> None:
    (mirror / "objects/info/alternates").write_text(f"{origin.path}/objects\n")
    run(mirror, "config", "core.alternateRefsCommand", str(recorder.program))

    assert gitwrite.fetch(mirror, str(origin.path), "main") == seeded
    assert recorder.lines() == []


def test_ssh_and_the_git_proxy_are_this_hosts(seeded, mirror, recorder, monkeypatch) -> None:
    run(mirror, "config", "core.sshCommand", str(recorder.program))
    run(mirror, "config", "core.gitProxy", str(recorder.program))
    host_ssh = recorder.directory / "host ssh"  # a name the shell would split
    recorder.plant(host_ssh, code=1)

    # Port 9 on loopback: nothing listens. GIT_SSH (the host's) is used, not the repo's.
    monkeypatch.setenv("GIT_SSH", str(host_ssh))
    with pytest.raises(RepoError) as by_ssh:
        gitwrite.fetch(mirror, "ssh://127.0.0.1:9/x.git", "main")
    with pytest.raises(RepoError) as by_git:
        gitwrite.fetch(mirror, "git://127.0.0.1:9/x.git", "main")

    assert "Connection refused" in by_git.value.message
    assert "failed" in by_ssh.value.message
    assert {line.rpartition(" ")[0] for line in recorder.lines()} == {"host ssh"}


class _AskForPassword(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="conf"')
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def password_wall() -> Iterator[str]:
    """An HTTP server on loopback that asks every request for a password; its URL."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _AskForPassword)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/conf.git"
    server.shutdown()
    server.server_close()


def test_no_credential_helper_or_askpass_of_the_repo_runs(mirror, recorder, password_wall) -> None:
    program = str(recorder.program)
    run(mirror, "config", "credential.helper", program)
    run(mirror, "config", f"credential.{password_wall}.helper", program)
    run(mirror, "config", "core.askPass", program)

    with pytest.raises(RepoError) as caught:
        gitwrite.fetch(mirror, password_wall, "main")

    assert "terminal prompts disabled" in caught.value.message
    assert recorder.lines() == []


# --- the environment --------------------------------------------------------------------


def test_the_hooks_directory_holds_no_hook() -> None:
    assert launch.NO_HOOKS.is_dir()
    assert [p.name for p in launch.NO_HOOKS.iterdir()] == ["README"]


def test_our_overrides_come_after_the_hosts_own(monkeypatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "safe.directory")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "/srv/mail-conf.git")
    monkeypatch.setenv("GIT_SSH_COMMAND", "ssh -i /etc/gitops-mail/key")
    monkeypatch.delenv("GIT_ALLOW_PROTOCOL", raising=False)

    env = launch.environment(None)

    count = int(env["GIT_CONFIG_COUNT"])
    pairs = [(env[f"GIT_CONFIG_KEY_{n}"], env[f"GIT_CONFIG_VALUE_{n}"]) for n in range(count)]
    assert pairs == [("safe.directory", "/srv/mail-conf.git"), *launch.OVERRIDES]
    assert env["GIT_SSH_COMMAND"] == "ssh -i /etc/gitops-mail/key"
    assert env["GIT_ALLOW_PROTOCOL"] == "file:git:ssh:http:https"
    assert env["GIT_PROXY_COMMAND"] == ""
    assert env["HOME"] == os.environ["HOME"]


def test_git_as_another_user_has_that_users_home(pusher: Pusher, monkeypatch) -> None:
    monkeypatch.setenv("GIT_SSH", "/opt/my ssh")
    env = launch.environment(procs.Identity(pusher.uid, pusher.gid))
    home = Path(os.path.expanduser(f"~{pusher.name}"))
    assert (env["HOME"], env["XDG_CONFIG_HOME"]) == (str(home), str(home / ".config"))
    assert env["GIT_SSH_COMMAND"] == "'/opt/my ssh'"


# --- the push hooks, as the pusher ------------------------------------------------------


def python_for(pusher: Pusher) -> str:
    """An interpreter the pusher can run that imports this gitops-mail: ours when the pusher
    can reach it, else a wrapper around the system's Python of the same version."""
    if pusher.run(["test", "-x", sys.executable], check=False).returncode == 0:
        return sys.executable
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.exists():
        pytest.skip(f"the pusher can run neither {sys.executable} nor {system}")
    paths = [str(Path(gitops_mail.__file__).parents[1]), sysconfig.get_paths()["purelib"]]
    wrapper = pusher.root / "python"
    pythonpath = shlex.quote(":".join(paths))
    pusher.write(wrapper, f'#!/bin/sh\nPYTHONPATH={pythonpath} exec {system} "$@"\n', mode=0o755)
    return str(wrapper)


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A root-owned 0755 directory the pusher can traverse (pytest's own is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="gitops-host-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_push_hooks_run_as_the_pusher_on_its_own_repo(
    pusher: Pusher, monkeypatch, open_tmp: Path
) -> None:
    monkeypatch.setattr(sys, "executable", python_for(pusher))  # what the hooks will run
    repo = pusher.bare_repo()
    work = pusher.clone(repo)
    pusher.commit(work, repo_files(), "first")
    pusher.push(work)
    host = open_tmp  # root's, readable by the pusher's hooks, inside nothing the pusher owns
    settings = host / "gitops-mail.yaml"
    settings.write_text(f"repo: {repo}\nbranch: main\nstate_dir: {host / 'state'}\n")
    args = {"repo": str(repo), "config": str(settings), "timeout": 0.05, "force": False}
    assert hooks.run(argparse.Namespace(command="hooks", action="install", **args)) == 0

    good = pusher.commit(work, {ALIASES_PATH: ALIASES + "info: owner@gmail.com\n"}, "info")
    accepted = pusher.push(work)
    pusher.commit(work, {ALIASES_PATH: ALIASES + "a: b@example.com\nb: a@example.com\n"})
    refused = pusher.push(work, check=False)

    assert f"remote: main ({good[:7]}): valid" in accepted.stderr
    assert refused.returncode == 1
    assert "remote: gitops-mail: push rejected" in refused.stderr
    assert tip(repo) == good
