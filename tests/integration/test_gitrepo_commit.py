"""Committing, pushing and fetching without a working tree, on real repositories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitops_mail.core.snapshot import MODE_EXEC, MODE_FILE, MODE_SYMLINK, Entry
from gitops_mail.errors import RepoError
from gitops_mail.git import plumbing as gitplumbing
from gitops_mail.git import read as gitread
from gitops_mail.git import write as gitwrite

BOT = ("gitops-mail", "gitops-mail@localhost")
ZONE = b"; zone\n$ORIGIN example.com.\n"


def log(repo: Path, git_run, fmt: str, rev: str = "main") -> str:
    return git_run(repo, "log", "-1", f"--format={fmt}", rev).strip()


def leftovers(git_dir: Path) -> list[str]:
    return sorted(p.name for p in git_dir.iterdir() if p.name.startswith("gitops-mail-index"))


@pytest.fixture
def seeded(workdir, git_run):
    """origin holds one commit with a plain file, an executable hook and a symlink."""
    hook = workdir.path / "chasquid/hooks/post-data"
    hook.parent.mkdir(parents=True)
    hook.write_text("#!/bin/sh\n")
    hook.chmod(0o755)
    (workdir.path / "chasquid/certs").mkdir()
    (workdir.path / "chasquid/certs/link").symlink_to("/etc/letsencrypt/live")
    first = workdir.commit({"gitops-mail.yaml": "version: 1\n", "dns/old.zone": "old\n"}, "seed")
    workdir.push()
    return first


def test_commit_on_a_bare_repo_moves_the_branch_and_keeps_other_files(origin, seeded, git_run):
    files = {"dns/example.com.zone": ZONE, "dns/old.zone": b"new\n"}
    message = "dns: update generated records for example.com [skip ci]\n\nbody line\n"

    commit = gitwrite.commit_files(origin.path, "main", seeded, files, message, author=BOT)

    assert gitplumbing.resolve_revision(origin.path, "main") == commit
    assert gitread.parent_revision(origin.path, commit) == seeded
    assert gitread.read_revision(origin.path, commit).files == {
        "gitops-mail.yaml": Entry(b"version: 1\n"),
        "chasquid/hooks/post-data": Entry(b"#!/bin/sh\n", MODE_EXEC),
        "chasquid/certs/link": Entry(b"/etc/letsencrypt/live", MODE_SYMLINK),
        "dns/example.com.zone": Entry(ZONE, MODE_FILE),
        "dns/old.zone": Entry(b"new\n", MODE_FILE),
    }
    assert git_run(origin.path, "cat-file", "commit", commit).split("\n\n", 1)[1] == message
    assert leftovers(origin.path) == []


def test_the_commit_is_made_as_the_given_identity_whatever_git_is_told(
    origin, seeded, git_run, monkeypatch
):
    git_run(origin.path, "config", "user.name", "Configured Person")
    git_run(origin.path, "config", "user.email", "person@example.com")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Environment Person")

    commit = gitwrite.commit_files(origin.path, "main", seeded, {"a": b"x"}, "m", author=BOT)

    shown = log(origin.path, git_run, "%an <%ae>|%cn <%ce>", commit)
    assert shown == "gitops-mail <gitops-mail@localhost>|gitops-mail <gitops-mail@localhost>"
    assert gitread.commit_author(origin.path, commit) == BOT
    assert gitread.commit_author(origin.path, seeded) == ("Test Author", "test@example.com")
    assert git_run(origin.path, "cat-file", "commit", commit).endswith("\n\nm\n")


def test_a_clone_sees_the_commit_and_pushes_on_top_of_it(origin, workdir, seeded):
    commit = gitwrite.commit_files(
        origin.path, "main", seeded, {"dns/a.zone": ZONE}, "m", author=BOT
    )

    workdir.git("pull", "--quiet", "--ff-only", "origin", "main")
    assert workdir.git("rev-parse", "HEAD").strip() == commit
    assert (workdir.path / "dns/a.zone").read_bytes() == ZONE
    workdir.commit({"README.md": "hi\n"})
    workdir.push()


def test_a_branch_that_moved_is_left_where_the_other_push_put_it(
    tmp_path, origin, workdir, seeded, git_run
):
    other = tmp_path / "other"
    git_run(tmp_path, "clone", "--quiet", str(origin.path), str(other))
    (other / "aliases").write_text("postmaster: ana\n")
    git_run(other, "add", "--all")
    git_run(other, "commit", "--quiet", "-m", "theirs")
    git_run(other, "push", "--quiet", "origin", "main")
    theirs = git_run(other, "rev-parse", "HEAD").strip()

    with pytest.raises(gitwrite.BranchMoved) as caught:
        gitwrite.commit_files(origin.path, "main", seeded, {"dns/a.zone": ZONE}, "m", author=BOT)

    assert caught.value.message == (
        f"branch main in {origin.path} is at {theirs[:7]}, not at {seeded[:7]}: "
        "it moved while this commit was made"
    )
    assert caught.value.hint == "read the new tip and build on it; nothing was overwritten"
    assert (caught.value.expected, caught.value.current) == (seeded, theirs)
    assert isinstance(caught.value, RepoError)
    assert gitplumbing.resolve_revision(origin.path, "main") == theirs
    assert leftovers(origin.path) == []


def test_a_missing_branch_is_not_created(origin, seeded):
    with pytest.raises(gitwrite.BranchMoved) as caught:
        gitwrite.commit_files(origin.path, "gone", seeded, {"a": b"x"}, "m", author=BOT)
    assert caught.value.current is None
    assert caught.value.message == (
        f"branch gone in {origin.path} no longer exists, not at {seeded[:7]}: "
        "it moved while this commit was made"
    )
    assert origin.git("branch", "--list") == "* main\n"


def test_a_bad_branch_name(origin, seeded):
    with pytest.raises(RepoError) as caught:
        gitwrite.commit_files(origin.path, "bad..name", seeded, {"a": b"x"}, "m", author=BOT)
    assert caught.value.message == "'bad..name' is not a valid branch name"


def test_removing_a_path_and_writing_an_executable_one_makes_it_a_plain_file(origin, seeded):
    files = {"dns/old.zone": None, "chasquid/hooks/post-data": b"#!/bin/sh\nexit 0\n"}

    commit = gitwrite.commit_files(origin.path, "main", seeded, files, "m", author=BOT)

    found = gitread.read_revision(origin.path, commit).files
    assert "dns/old.zone" not in found
    assert found["chasquid/hooks/post-data"] == Entry(b"#!/bin/sh\nexit 0\n", MODE_FILE)
    assert found["chasquid/certs/link"] == Entry(b"/etc/letsencrypt/live", MODE_SYMLINK)


def test_nothing_to_commit(origin, seeded):
    with pytest.raises(RepoError) as caught:
        gitwrite.commit_files(
            origin.path, "main", seeded, {"dns/old.zone": b"old\n"}, "m", author=BOT
        )
    assert caught.value.message == f"nothing to commit: {seeded[:7]} already holds these files"
    assert gitplumbing.resolve_revision(origin.path, "main") == seeded


@pytest.mark.parametrize(
    ("path", "said"),
    [
        (".git/hooks/post-commit", "error: Invalid path '.git/hooks/post-commit'"),
        ("../escape", "error: Invalid path '../escape'"),
        ("gitops-mail.yaml/inside", "error: 'gitops-mail.yaml/inside' appears as both a file and"),
    ],
)
def test_paths_git_refuses_leave_the_branch_alone(origin, seeded, path, said):
    with pytest.raises(RepoError) as caught:
        gitwrite.commit_files(origin.path, "main", seeded, {path: b"x"}, "m", author=BOT)
    assert caught.value.message.startswith(f"git refused the files to commit: {said}")
    assert gitplumbing.resolve_revision(origin.path, "main") == seeded
    assert leftovers(origin.path) == []


def test_a_non_bare_repo_keeps_its_index_and_working_tree(workdir, seeded, git_run):
    workdir.git("pull", "--quiet", "origin", "main")
    (workdir.path / "unstaged.txt").write_text("mine\n")
    (workdir.path / "staged.txt").write_text("staged\n")
    workdir.git("add", "staged.txt")
    index = (workdir.path / ".git/index").read_bytes()

    commit = gitwrite.commit_files(
        workdir.path, "main", seeded, {"dns/a.zone": ZONE}, "m", author=BOT
    )

    assert workdir.git("rev-parse", "HEAD").strip() == commit
    assert (workdir.path / ".git/index").read_bytes() == index
    assert not (workdir.path / "dns/a.zone").exists()
    assert (workdir.path / "unstaged.txt").read_text() == "mine\n"
    assert gitread.read_revision(workdir.path, commit).files["dns/a.zone"] == Entry(ZONE)
    assert "staged.txt" not in gitread.read_revision(workdir.path, commit).files
    assert leftovers(workdir.path / ".git") == []


def test_hook_variables_do_not_redirect_the_commit(tmp_path, origin, seeded, monkeypatch):
    decoy = tmp_path / "decoy-index"
    monkeypatch.setenv("GIT_INDEX_FILE", str(decoy))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "nowhere"))

    commit = gitwrite.commit_files(origin.path, "main", seeded, {"a": b"x"}, "m", author=BOT)

    monkeypatch.delenv("GIT_DIR")
    assert gitplumbing.resolve_revision(origin.path, "main") == commit
    assert not decoy.exists()


# --- push and fetch -------------------------------------------------------------


@pytest.fixture
def mirror(tmp_path, origin, seeded, git_run):
    """A bare repo of the daemon's own that polls origin."""
    path = tmp_path / "mirror.git"
    git_run(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(path))
    assert gitwrite.fetch(path, str(origin.path), "main") == seeded
    return path


def test_fetch_push_round_trip(origin, workdir, mirror, seeded):
    commit = gitwrite.commit_files(mirror, "main", seeded, {"dns/a.zone": ZONE}, "m", author=BOT)
    gitwrite.push(mirror, str(origin.path), "main")
    assert gitplumbing.resolve_revision(origin.path, "main") == commit

    workdir.git("pull", "--quiet", "--ff-only", "origin", "main")
    theirs = workdir.commit({"aliases": "postmaster: ana\n"})
    workdir.push()
    assert gitwrite.fetch(mirror, str(origin.path), "main") == theirs
    assert gitplumbing.resolve_revision(mirror, "main") == theirs


def test_a_push_behind_the_remote_is_rejected_never_forced(origin, workdir, mirror, seeded):
    workdir.git("pull", "--quiet", "--ff-only", "origin", "main")
    theirs = workdir.commit({"aliases": "postmaster: ana\n"})
    workdir.push()
    gitwrite.commit_files(mirror, "main", seeded, {"dns/a.zone": ZONE}, "m", author=BOT)

    with pytest.raises(gitwrite.PushRejected) as caught:
        gitwrite.push(mirror, str(origin.path), "main")

    assert caught.value.message == (
        f"{origin.path} refused the push of main: it has commits this repo lacks"
    )
    assert caught.value.hint == "fetch, build on the new tip, and push again"
    assert gitplumbing.resolve_revision(origin.path, "main") == theirs


def test_fetch_replaces_a_local_commit_the_remote_never_took(origin, workdir, mirror, seeded):
    gitwrite.commit_files(mirror, "main", seeded, {"dns/a.zone": ZONE}, "m", author=BOT)
    workdir.git("pull", "--quiet", "--ff-only", "origin", "main")
    theirs = workdir.commit({"aliases": "postmaster: ana\n"})
    workdir.push()

    assert gitwrite.fetch(mirror, str(origin.path), "main") == theirs
    assert gitplumbing.resolve_revision(mirror, "main") == theirs


def test_push_and_fetch_failures_hide_credentials(mirror):
    remote = "http://robot:s3cret-token@127.0.0.1:9/conf.git"  # port 9: nothing listens
    with pytest.raises(RepoError) as pushed:
        gitwrite.push(mirror, remote, "main")
    with pytest.raises(RepoError) as fetched:
        gitwrite.fetch(mirror, remote, "main")

    for caught in (pushed, fetched):
        assert not isinstance(caught.value, gitwrite.PushRejected)
        assert "s3cret" not in caught.value.message
        assert "robot" not in caught.value.message
        assert "http://127.0.0.1:9/conf.git" in caught.value.message
    assert pushed.value.message.startswith(
        "git push of main to http://127.0.0.1:9/conf.git failed:"
    )
    assert fetched.value.message.startswith(
        "git fetch of main from http://127.0.0.1:9/conf.git failed:"
    )
    assert fetched.value.hint == "check the remote's address and access"


def test_fetch_refuses_the_checked_out_branch_of_a_working_tree(origin, workdir, seeded):
    workdir.git("pull", "--quiet", "origin", "main")
    with pytest.raises(RepoError) as caught:
        gitwrite.fetch(workdir.path, str(origin.path), "main")
    assert "refusing to fetch into branch 'refs/heads/main'" in caught.value.message
    assert caught.value.hint == (
        "poll mode needs a repository of its own: create one with git init --bare"
    )


def test_push_works_from_a_non_bare_repo_without_touching_its_checkout(
    origin, workdir, seeded, git_run
):
    workdir.git("pull", "--quiet", "origin", "main")
    commit = gitwrite.commit_files(
        workdir.path, "main", seeded, {"dns/a.zone": ZONE}, "m", author=BOT
    )
    gitwrite.push(workdir.path, "origin", "main")
    assert gitplumbing.resolve_revision(origin.path, "main") == commit
    assert os.listdir(workdir.path / "dns") == ["old.zone"]
