"""Commit-back of the generated zones on real repositories: local and poll mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gitops_mail.core.dns.zone import render_zones
from gitops_mail.core.snapshot import Entry
from gitops_mail.core.state import State, load_state
from gitops_mail.daemon.commitback import (
    BOT,
    CommitBack,
    commit_back,
    commit_message,
    is_own_commit,
)
from gitops_mail.git import plumbing as gitplumbing
from gitops_mail.git import read as gitread
from gitops_mail.git import write as gitwrite
from gitops_mail.host.settings import HostSettings

MANIFEST = """\
version: 1
server:
  ipv4: [198.51.100.7]
domains:
  example.com:
    spf: {include: [_spf.google.com]}
    dmarc: {p: quarantine, rua: ["mailto:dmarc@example.com"]}
"""
CONF = {
    "gitops-mail.yaml": MANIFEST,
    "chasquid/chasquid.conf": 'hostname: "mail.example.com"\n',
    "chasquid/domains/example.com/aliases": "postmaster: ana@example.org\n",
}
ZONE = "dns/example.com.zone"


def subject_and_body(revision: str) -> str:
    return (
        "dns: update generated records for example.com [skip ci]\n\n"
        "Rendered by gitops-mail from gitops-mail.yaml and chasquid/chasquid.conf"
        f" of {revision}.\n"
    )


def state_of(repo: Path, rev: str) -> State:
    return load_state(gitread.read_revision(repo, rev))


def history(repo: Path, git_run, rev: str = "main") -> list[str]:
    """``<id> <author name>|<subject>`` per commit, newest first."""
    return git_run(repo, "log", "--format=%H %an|%s", rev).splitlines()


class Sleeps:
    """Records the backoff; ``then`` runs during each one (another push, say)."""

    def __init__(self, then=None) -> None:
        self.calls: list[float] = []
        self.then = then

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.then is not None:
            self.then()


@pytest.fixture
def pushed(workdir):
    """origin's main holds a valid conf repo without generated files; its id."""
    revision = workdir.commit(CONF, "conf")
    workdir.push()
    return revision


@pytest.fixture
def local(tmp_path, origin):
    """Host settings for a daemon that watches origin itself."""
    return HostSettings(path=tmp_path / "host.yaml", repo=origin.path, state_dir=tmp_path / "st")


@pytest.fixture
def other(tmp_path, origin, pushed, git_run):
    """Another clone of origin that pushes: ``other(files) -> id``."""
    path = tmp_path / "other"
    git_run(tmp_path, "clone", "--quiet", str(origin.path), str(path))
    count = iter(range(1000))

    def push(files: dict[str, str] | None = None) -> str:
        for name, text in (files or {"README.md": f"note {next(count)}\n"}).items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_text(text)
        git_run(path, "add", "--all")
        git_run(path, "commit", "--quiet", "-m", "theirs")
        git_run(path, "pull", "--quiet", "--rebase", "origin", "main")
        git_run(path, "push", "--quiet", "origin", "HEAD:main")
        return git_run(path, "rev-parse", "HEAD").strip()

    return push


def poll_host(tmp_path, origin, git_run, name: str) -> HostSettings:
    repo = tmp_path / f"{name}.git"
    git_run(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(repo))
    return HostSettings(
        path=tmp_path / f"{name}.yaml",
        repo=repo,
        remote=str(origin.path),
        state_dir=tmp_path / f"{name}-state",
    )


# --- local mode ---------------------------------------------------------------


def test_commits_the_zone_once_then_finds_nothing_to_do(origin, local, pushed, git_run):
    state = state_of(origin.path, pushed)

    first = commit_back(local, state, pushed)

    assert first.result == "committed"
    assert first.commit is not None
    assert first.reason == f"committed {ZONE} as {first.commit[:7]}"
    assert gitplumbing.resolve_revision(origin.path, "main") == first.commit
    assert gitread.parent_revision(origin.path, first.commit) == pushed
    files = gitread.read_revision(origin.path, first.commit).files
    assert files[ZONE] == Entry(render_zones(state)[ZONE])
    assert git_run(origin.path, "log", "-1", "--format=%B", first.commit) == (
        subject_and_body(pushed) + "\n"
    )
    assert git_run(origin.path, "log", "-1", "--format=%an <%ae>|%cn <%ce>", first.commit) == (
        "gitops-mail <gitops-mail@localhost>|gitops-mail <gitops-mail@localhost>\n"
    )

    tip = first.commit
    assert commit_back(local, state_of(origin.path, tip), tip) == CommitBack(
        "unchanged", None, f"{tip[:7]} already holds the generated files"
    )
    # The same applied revision again (a second host, a restart): the tip has it.
    sleeps = Sleeps()
    assert commit_back(local, state, pushed, sleep=sleeps) == CommitBack(
        "unchanged", None, f"{tip[:7]} already holds the generated files"
    )
    assert sleeps.calls == []  # a moved branch is read again at once
    assert gitplumbing.resolve_revision(origin.path, "main") == tip


def test_a_push_from_another_clone_meanwhile_is_kept(origin, local, pushed, other, git_run):
    state = state_of(origin.path, pushed)
    theirs = other({"chasquid/domains/example.com/aliases": "postmaster: bob@example.org\n"})

    with capture_logs() as logs:
        done = commit_back(local, state, pushed)

    assert done.result == "committed"
    assert [(e["event"], e["tip"], e["attempt"]) for e in logs] == [("commitback.retry", theirs, 1)]
    assert history(origin.path, git_run) == [
        f"{done.commit} gitops-mail|dns: update generated records for example.com [skip ci]",
        f"{theirs} Test Author|theirs",
        f"{pushed} Test Author|conf",
    ]
    files = gitread.read_revision(origin.path, "main").files
    assert files["chasquid/domains/example.com/aliases"].data == b"postmaster: bob@example.org\n"


def test_a_tip_that_changed_the_manifest_supersedes_the_commit(origin, local, pushed, other):
    state = state_of(origin.path, pushed)
    theirs = other({"gitops-mail.yaml": MANIFEST.replace("quarantine", "reject")})

    done = commit_back(local, state, pushed)

    assert done == CommitBack(
        "superseded",
        None,
        f"{theirs[:7]} changed gitops-mail.yaml or chasquid/chasquid.conf: its own reconcile"
        " commits",
    )
    assert gitplumbing.resolve_revision(origin.path, "main") == theirs


def test_a_zone_for_a_domain_no_longer_in_the_manifest_is_removed(
    origin, local, workdir, pushed, git_run
):
    assert commit_back(local, state_of(origin.path, pushed), pushed).result == "committed"
    workdir.git("pull", "--quiet", "--ff-only", "origin", "main")
    moved = MANIFEST.replace("example.com:", "example.org:").replace("@example.com", "@example.org")
    handmade = "$ORIGIN other.example.\n@ IN TXT hello\n"
    revision = workdir.commit({"gitops-mail.yaml": moved, "dns/other.example.zone": handmade})
    workdir.push()

    done = commit_back(local, state_of(origin.path, revision), revision)

    assert done.result == "committed"
    assert gitread.changed_paths(origin.path, revision, "main") == [
        "dns/example.com.zone",
        "dns/example.org.zone",
    ]
    files = gitread.read_revision(origin.path, "main").files
    assert "dns/example.com.zone" not in files
    assert files["dns/other.example.zone"].data == handmade.encode()
    assert git_run(origin.path, "log", "-1", "--format=%s") == (
        "dns: update generated records for example.org;"
        " remove generated records for example.com [skip ci]\n"
    )


def test_git_failures_come_back_as_failed(tmp_path, pushed, origin):
    settings = HostSettings(path=tmp_path / "h.yaml", repo=tmp_path / "no-repo")
    (tmp_path / "no-repo").mkdir()
    done = commit_back(settings, state_of(origin.path, pushed), pushed)
    assert done == CommitBack("failed", None, f"{tmp_path / 'no-repo'} is not a git repository")


# --- poll mode ------------------------------------------------------------------


def test_poll_mode_pushes_the_commit(tmp_path, origin, pushed, git_run):
    host = poll_host(tmp_path, origin, git_run, "host")
    assert gitwrite.fetch(host.repo, str(origin.path), "main") == pushed

    done = commit_back(host, state_of(host.repo, pushed), pushed)

    assert done.result == "committed"
    assert done.commit is not None
    assert done.reason == f"committed {ZONE} as {done.commit[:7]} and pushed"
    assert gitplumbing.resolve_revision(origin.path, "main") == done.commit


def test_two_hosts_render_the_same_bytes_and_commit_once(
    tmp_path, origin, pushed, git_run, monkeypatch
):
    one = poll_host(tmp_path, origin, git_run, "one")
    two = poll_host(tmp_path, origin, git_run, "two")
    for host in (one, two):
        gitwrite.fetch(host.repo, str(origin.path), "main")
    states = [state_of(host.repo, pushed) for host in (one, two)]
    assert render_zones(states[0]) == render_zones(states[1])

    at = {"GIT_AUTHOR_DATE": "2026-01-01T10:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T10:00:00Z"}
    for variable, when in at.items():
        monkeypatch.setenv(variable, when)
    first = commit_back(one, states[0], pushed)
    for variable, when in at.items():  # host two commits a second later: the same commit still
        monkeypatch.setenv(variable, when.replace(":00Z", ":01Z"))
    second = commit_back(two, states[1], pushed, sleep=Sleeps())

    assert first.result == "committed"
    assert first.commit is not None
    # the commit's dates are its parent's: the same files on the same parent are the same
    # commit on every host, so pushing it again adds nothing
    assert second.commit == first.commit
    assert [line.split(" ", 1)[1] for line in history(origin.path, git_run)] == [
        "gitops-mail|dns: update generated records for example.com [skip ci]",
        "Test Author|conf",
    ]
    assert gitplumbing.resolve_revision(two.repo, "main") == first.commit


def test_poll_mode_rebuilds_on_a_push_it_lost_to(tmp_path, origin, pushed, other, git_run):
    host = poll_host(tmp_path, origin, git_run, "host")
    gitwrite.fetch(host.repo, str(origin.path), "main")
    theirs = other()

    done = commit_back(host, state_of(host.repo, pushed), pushed, sleep=Sleeps())

    assert done.result == "committed"
    assert [line.split("|")[0] for line in history(origin.path, git_run)] == [
        f"{done.commit} gitops-mail",
        f"{theirs} Test Author",
        f"{pushed} Test Author",
    ]


def test_poll_mode_gives_up_when_the_remote_keeps_moving(tmp_path, origin, pushed, other, git_run):
    host = poll_host(tmp_path, origin, git_run, "host")
    gitwrite.fetch(host.repo, str(origin.path), "main")
    theirs: list[str] = []
    other_push = lambda: theirs.append(other())  # noqa: E731 - the race, during each backoff
    other_push()
    sleeps = Sleeps(then=other_push)

    done = commit_back(host, state_of(host.repo, pushed), pushed, sleep=sleeps)

    assert done == CommitBack("failed", None, "the branch kept moving: gave up after 4 attempts")
    assert len(sleeps.calls) == 3
    for seconds, base in zip(sleeps.calls, (1.0, 2.0, 4.0), strict=True):
        assert base * 0.5 <= seconds <= base
    assert gitplumbing.resolve_revision(origin.path, "main") == theirs[-1]
    assert all(" gitops-mail|" not in line for line in history(origin.path, git_run))


def test_poll_mode_push_failure_is_reported(tmp_path, origin, pushed, git_run):
    host = poll_host(tmp_path, origin, git_run, "host")
    gitwrite.fetch(host.repo, str(origin.path), "main")
    gone = HostSettings(
        path=host.path, repo=host.repo, remote=str(tmp_path / "gone.git"), state_dir=host.state_dir
    )

    done = commit_back(gone, state_of(host.repo, pushed), pushed)

    assert done.result == "failed"
    assert done.commit is None
    assert done.reason.startswith(f"git push of main to {tmp_path / 'gone.git'} failed: ")
    assert gitplumbing.resolve_revision(origin.path, "main") == pushed


# --- is_own_commit ------------------------------------------------------------


def test_own_commits_are_recognised(origin, local, workdir, pushed):
    done = commit_back(local, state_of(origin.path, pushed), pushed)
    assert done.commit is not None
    assert is_own_commit(origin.path, done.commit) is True
    assert is_own_commit(origin.path, pushed) is False  # a person's commit of the conf

    workdir.git("pull", "--quiet", "--ff-only", "origin", "main")
    by_a_person = workdir.commit({ZONE: "; edited by hand\n"})
    assert is_own_commit(workdir.path, by_a_person) is False

    aliases = {"chasquid/domains/example.com/aliases": b"postmaster: eve@example.org\n"}
    forged = gitwrite.commit_files(origin.path, "main", done.commit, aliases, "m", author=BOT)
    assert is_own_commit(origin.path, forged) is False  # the bot's name, but not its paths

    mixed = {ZONE: b"; x\n", "chasquid/chasquid.conf": b'hostname: "mx.example.com"\n'}
    both = gitwrite.commit_files(origin.path, "main", forged, mixed, "m", author=BOT)
    assert is_own_commit(origin.path, both) is False


def test_a_first_commit_is_never_own(tmp_path, make_repo, git_run):
    repo = make_repo(tmp_path, {ZONE: "; zone\n"}, bare=True)
    git_run(repo, "config", "user.name", "gitops-mail")
    root = gitplumbing.resolve_revision(repo, "main")
    assert is_own_commit(repo, root) is False


def test_another_bot_identity(origin, pushed):
    robot = ("mail robot", "robot@example.com")
    settings = HostSettings(path=origin.path / "h.yaml", repo=origin.path)
    done = commit_back(settings, state_of(origin.path, pushed), pushed, author=robot)
    assert done.commit is not None
    assert gitread.commit_author(origin.path, done.commit) == robot
    assert is_own_commit(origin.path, done.commit, author=robot) is True
    assert is_own_commit(origin.path, done.commit) is False


# --- the message ----------------------------------------------------------------


def test_the_message_names_what_changed_and_where_it_came_from() -> None:
    revision = "a" * 40
    assert commit_message({"dns/b.example.zone": b"x", "dns/a.example.zone": b"y"}, revision) == (
        "dns: update generated records for a.example, b.example [skip ci]\n\n"
        f"Rendered by gitops-mail from gitops-mail.yaml and chasquid/chasquid.conf of {revision}.\n"
    )
    many = {f"dns/d{i}.example.zone": b"x" for i in range(4)} | {"dns/old.example.zone": None}
    assert commit_message(many, revision).split("\n")[0] == (
        "dns: update generated records for 4 domains;"
        " remove generated records for old.example [skip ci]"
    )
