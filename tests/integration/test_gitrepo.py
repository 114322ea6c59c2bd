"""gitrepo against real git repositories, bare and not."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support.pusher import not_owned_by

from gitops_mail.core.snapshot import MODE_EXEC, MODE_FILE, MODE_GITLINK, MODE_SYMLINK, Entry
from gitops_mail.errors import CommandError, GitopsMailError, RepoError
from gitops_mail.git import plumbing as gitplumbing
from gitops_mail.git import read as gitread
from gitops_mail.git import write as gitwrite

FILES = {
    "gitops-mail.yaml": "version: 1\n",
    "chasquid/chasquid.conf": 'hostname: "mail.example.com"\n',
    "chasquid/domains/example.com/users": b"",
}


def test_read_head_of_a_work_tree_and_of_a_bare_repo(tmp_path, make_repo):
    for bare in (False, True):
        repo = make_repo(tmp_path / str(bare), FILES, bare=bare)
        snapshot = gitread.read_revision(repo)
        head = gitplumbing.resolve_revision(repo, "HEAD")
        assert len(head) == 40
        assert snapshot.revision == head
        assert snapshot.source == f"HEAD ({head[:7]})"
        assert snapshot.files == {
            "gitops-mail.yaml": Entry(b"version: 1\n"),
            "chasquid/chasquid.conf": Entry(b'hostname: "mail.example.com"\n'),
            "chasquid/domains/example.com/users": Entry(b""),
        }
        assert snapshot.directories == {
            "chasquid",
            "chasquid/domains",
            "chasquid/domains/example.com",
        }


def test_read_older_revision_branch_and_short_id(workdir):
    first = workdir.commit({"a": "one\n"}, "first")
    workdir.git("branch", "old-state")
    second = workdir.commit({"a": "two\n", "b": "new\n"}, "second")
    workdir.git("tag", "v1", first)

    assert gitread.read_revision(workdir.path).files == {"a": Entry(b"two\n"), "b": Entry(b"new\n")}
    for rev in ("HEAD~1", "old-state", first[:8], "v1", first):
        snapshot = gitread.read_revision(workdir.path, rev)
        assert snapshot.files == {"a": Entry(b"one\n")}
        assert snapshot.revision == first
        assert snapshot.source == f"{rev} ({first[:7]})"
    assert gitplumbing.resolve_revision(workdir.path, "main") == second


def test_repo_may_be_a_subdirectory_of_the_work_tree(workdir):
    workdir.commit({"top": "t\n", "sub/deeper/file": "f\n"})
    inner = workdir.path / "sub" / "deeper"

    assert set(gitread.read_revision(inner).files) == {"top", "sub/deeper/file"}
    assert gitplumbing.repo_toplevel(inner) == workdir.path
    assert gitplumbing.is_bare(inner) is False


def test_bare_repo_toplevel_is_its_git_dir(origin, workdir):
    workdir.commit({"a": "x"})
    workdir.push()

    assert gitplumbing.is_bare(origin.path) is True
    assert gitplumbing.repo_toplevel(origin.path) == origin.path
    assert gitread.read_revision(origin.path, "main").files == {"a": Entry(b"x")}


def test_modes_exec_symlink_and_submodule(workdir):
    hook = workdir.path / "hooks" / "post-data"
    hook.parent.mkdir()
    hook.write_text("#!/bin/sh\n")
    hook.chmod(0o755)
    (workdir.path / "link").symlink_to("../../etc/passwd")
    workdir.git("add", "--all")
    module_commit = workdir.commit({"plain": "p"}, "files")
    workdir.git("update-index", "--add", "--cacheinfo", f"160000,{module_commit},vendor/module")
    workdir.git("commit", "--quiet", "-m", "submodule")

    files = gitread.read_revision(workdir.path).files
    assert files == {
        "hooks/post-data": Entry(b"#!/bin/sh\n", MODE_EXEC),
        "link": Entry(b"../../etc/passwd", MODE_SYMLINK),
        "plain": Entry(b"p", MODE_FILE),
        "vendor/module": Entry(b"", MODE_GITLINK),
    }


def test_contents_survive_byte_for_byte(workdir):
    tricky = {
        "empty": b"",
        "newlines": b"\n\n\n",
        "header-like": b"0123 blob 5\nabc\n",
        "binary": bytes(range(256)) * 40,
        "same-as-binary": bytes(range(256)) * 40,
        "no-final-newline": b"last",
        "name with spaces\tand tab": b"s",
        "caf\u00e9/\u00fcnicode": "\u00e9".encode(),
    }
    workdir.commit(tricky)

    files = gitread.read_revision(workdir.path).files
    assert {path: entry.data for path, entry in files.items()} == tricky


def test_non_utf8_file_names_round_trip(workdir):
    raw = b"bad-\xff-name"
    (workdir.path / os.fsdecode(raw)).write_bytes(b"x")
    workdir.commit({})

    files = gitread.read_revision(workdir.path).files
    assert [os.fsencode(path) for path in files] == [raw]


def test_the_working_tree_is_never_read(workdir):
    workdir.commit({"a": "committed\n", "gone": "still here\n"})
    (workdir.path / "a").write_text("dirty\n")
    (workdir.path / "untracked").write_text("u\n")
    (workdir.path / "gone").unlink()
    (workdir.path / "staged").write_text("s\n")
    workdir.git("add", "staged")

    assert gitread.read_revision(workdir.path).files == {
        "a": Entry(b"committed\n"),
        "gone": Entry(b"still here\n"),
    }


def test_unknown_revision(workdir):
    workdir.commit({"a": "x"})
    for rev in ("no-such-branch", "-h", "HEAD:a", "deadbeef"):
        with pytest.raises(RepoError) as caught:
            gitread.read_revision(workdir.path, rev)
        assert caught.value.message == f"no revision {rev!r} in {workdir.path}"
        assert caught.value.hint == (
            "check the name with `git log --oneline`, or `git fetch` first if it is remote"
        )


def test_not_a_git_repository(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    for path in (plain, tmp_path / "missing"):
        for call in (gitread.read_revision, gitplumbing.repo_toplevel, gitplumbing.is_bare):
            with pytest.raises(RepoError) as caught:
                call(path)
            assert caught.value.message == f"{path} is not a git repository"
            assert caught.value.hint == (
                "pass --repo PATH, or run inside a checkout of the conf repo"
            )


def test_relative_paths_are_shown_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RepoError, match=rf"^{tmp_path} is not a git repository$"):
        gitread.read_revision(Path("."))


def test_empty_repository(origin, workdir):
    for repo in (origin.path, workdir.path):
        with pytest.raises(RepoError) as caught:
            gitread.read_revision(repo)
        assert caught.value.message == f"{repo} has no commits yet"
        assert caught.value.hint == (
            "commit something first, or use --worktree to read the files on disk"
        )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the repo to another user")
def test_a_repo_owned_by_another_user_is_read_all_the_same(pusher):
    # The daemon runs as root; the watched repo belongs to whoever pushes. git refuses
    # it to root ("dubious ownership"); gitops-mail runs git as its owner instead.
    work = pusher.clone(pusher.bare_repo())
    tip = pusher.commit(work, {"a": "x", "sub/b": "y"}, "first")
    plain = subprocess.run(["git", "-C", str(work), "log"], capture_output=True, check=False)
    assert b"dubious ownership" in plain.stderr

    assert gitread.read_revision(work).data("a") == b"x"
    assert gitread.read_revision(work / "sub").revision == tip  # from below its top too
    assert gitplumbing.repo_toplevel(work) == work
    assert list(not_owned_by(work, pusher.uid)) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the repo to another user")
def test_a_repo_its_owner_cannot_reach_is_explained(tmp_path, make_repo):
    # tmp_path is root's alone (0700 above it): its owner cannot get to the repo.
    repo = make_repo(tmp_path, {"a": "x"})
    subprocess.run(["chown", "-R", "65534:65534", str(repo)], check=True)

    with pytest.raises(RepoError) as caught:
        gitread.read_revision(repo)
    assert caught.value.message == f"git cannot reach {repo} as the user who owns it"
    assert caught.value.hint == (
        "git runs as the repository's owner: let that user search (x) every directory above it"
    )


def test_git_missing_is_a_command_error(tmp_path, make_repo, monkeypatch):
    repo = make_repo(tmp_path, {"a": "x"})
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))

    with pytest.raises(CommandError) as caught:
        gitread.read_revision(repo)
    assert caught.value.argv[0] == "git"
    assert caught.value.returncode == 127
    assert caught.value.hint == "is git installed?"


def test_hook_variables_do_not_redirect_reads(tmp_path, make_repo, monkeypatch):
    repo = make_repo(tmp_path / "one", {"a": "one"})
    other = make_repo(tmp_path / "two", {"a": "two"})
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))

    assert gitread.read_revision(repo).files == {"a": Entry(b"one")}


def test_changed_paths(workdir):
    old = workdir.commit({"same": "s", "edit": "1", "drop": "d", "move": "m", "exec": "e"})
    (workdir.path / "exec").chmod(0o755)
    (workdir.path / "move").rename(workdir.path / "moved")
    new = workdir.commit({"edit": "2", "drop": None, "added/deep": "n"})

    assert gitread.changed_paths(workdir.path, old, new) == [
        "added/deep",
        "drop",
        "edit",
        "exec",
        "move",
        "moved",
    ]
    assert gitread.changed_paths(workdir.path, new, new) == []


def test_parent_revision(workdir):
    first = workdir.commit({"a": "1"})
    second = workdir.commit({"a": "2"})

    assert gitread.parent_revision(workdir.path, "HEAD") == first
    assert gitread.parent_revision(workdir.path, second[:7]) == first
    assert gitread.parent_revision(workdir.path, first) is None


def test_merge_base(workdir):
    base = workdir.commit({"a": "1"})
    workdir.git("checkout", "--quiet", "-b", "feature")
    feature = workdir.commit({"b": "2"})
    workdir.git("checkout", "--quiet", "main")
    main = workdir.commit({"c": "3"})
    workdir.git("checkout", "--quiet", "--orphan", "unrelated")
    unrelated = workdir.commit({"d": "4"})

    assert gitread.merge_base(workdir.path, "feature", "main") == base
    assert gitread.merge_base(workdir.path, feature, main) == base
    assert gitread.merge_base(workdir.path, "main", unrelated) is None


def test_init_repo_writes_modes_and_commits(tmp_path):
    files = {
        "gitops-mail.yaml": Entry(b"version: 1\n"),
        "chasquid/hooks/post-data": Entry(b"#!/bin/sh\n", MODE_EXEC),
        "chasquid/certs/link": Entry(b"/etc/letsencrypt/live", MODE_SYMLINK),
    }
    target = tmp_path / "new" / "conf"

    commit = gitwrite.init_repo(target, files, "Scaffold", branch="trunk")

    snapshot = gitread.read_revision(target, "trunk")
    assert snapshot.revision == commit
    assert snapshot.files == files
    assert (target / "chasquid/hooks/post-data").stat().st_mode & 0o777 == 0o755
    assert (
        subprocess.run(
            ["git", "-C", str(target), "status", "--porcelain"], capture_output=True, check=True
        ).stdout
        == b""
    )
    assert _git_log(target, "%an <%ae>|%s") == "Test Author <test@example.com>|Scaffold"


def test_init_repo_in_an_existing_empty_directory(tmp_path):
    gitwrite.init_repo(tmp_path, {"a": Entry(b"x")}, "init")

    assert gitread.read_revision(tmp_path).files == {"a": Entry(b"x")}
    assert gitplumbing.repo_toplevel(tmp_path) == tmp_path


def test_init_repo_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "keep").write_text("mine\n")

    with pytest.raises(RepoError) as caught:
        gitwrite.init_repo(tmp_path, {"a": Entry(b"x")}, "init")
    assert caught.value.message == f"{tmp_path} is not empty"
    assert caught.value.hint == "choose a new or empty directory so nothing there is overwritten"
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]
    assert (tmp_path / "keep").read_text() == "mine\n"


def test_init_repo_leaves_nothing_behind_on_a_bad_path(tmp_path):
    target = tmp_path / "conf"
    with pytest.raises(GitopsMailError) as caught:
        gitwrite.init_repo(target, {"ok": Entry(b"x"), "../escape": Entry(b"y")}, "init")
    assert (
        caught.value.message == f"refusing to write '../escape': it is not a path inside {target}"
    )
    assert list(tmp_path.iterdir()) == []

    with pytest.raises(RepoError) as caught:
        gitwrite.init_repo(target, {".git/hooks/post-commit": Entry(b"x", MODE_EXEC)}, "init")
    assert caught.value.message == (
        "refusing to write '.git/hooks/post-commit': git's own directory cannot be part of a commit"
    )
    assert list(tmp_path.iterdir()) == []


def test_init_repo_with_a_bad_branch_name_leaves_nothing(tmp_path):
    target = tmp_path / "conf"
    with pytest.raises(RepoError) as caught:
        gitwrite.init_repo(target, {"a": Entry(b"x")}, "init", branch="bad..name")
    assert caught.value.message == (
        f"git init failed in {target}: fatal: invalid initial branch name: 'bad..name'"
    )
    assert list(tmp_path.iterdir()) == []


def test_commit_identity_falls_back_when_none_is_configured(tmp_path, monkeypatch):
    for variable in ("NAME", "EMAIL"):
        for role in ("AUTHOR", "COMMITTER"):
            monkeypatch.delenv(f"GIT_{role}_{variable}")
    monkeypatch.delenv("EMAIL", raising=False)

    gitwrite.init_repo(tmp_path, {"a": Entry(b"x")}, "init")

    expected = "gitops-mail <gitops-mail@localhost>"
    assert _git_log(tmp_path, "%an <%ae>|%cn <%ce>") == f"{expected}|{expected}"


def test_configured_identity_wins(tmp_path, monkeypatch, git_run):
    for variable in ("NAME", "EMAIL"):
        for role in ("AUTHOR", "COMMITTER"):
            monkeypatch.delenv(f"GIT_{role}_{variable}")
    git_run(tmp_path, "config", "--global", "user.name", "Ada")
    git_run(tmp_path, "config", "--global", "user.email", "ada@example.com")

    gitwrite.init_repo(tmp_path / "conf", {"a": Entry(b"x")}, "init")

    assert _git_log(tmp_path / "conf", "%an <%ae>") == "Ada <ada@example.com>"


def test_commit_paths_commits_only_the_named_paths(workdir):
    workdir.commit({"users": "old\n", "aliases": "a\n", "other": "o\n", "gone": "g\n"})
    (workdir.path / "users").write_text("new\n")
    (workdir.path / "added").write_text("n\n")
    (workdir.path / "gone").unlink()
    (workdir.path / "other").write_text("unrelated edit\n")
    (workdir.path / "aliases").write_text("staged edit\n")
    workdir.git("add", "aliases")

    paths = ["users", "added", "gone"]
    commit = gitwrite.commit_paths(workdir.path, paths, "users: add i@example.com")

    assert commit == workdir.git("rev-parse", "HEAD").strip()
    assert gitread.changed_paths(workdir.path, "HEAD~1", "HEAD") == ["added", "gone", "users"]
    assert _git_log(workdir.path, "%s") == "users: add i@example.com"
    status = workdir.git("status", "--porcelain").splitlines()
    assert status == ["M  aliases", " M other"]


def test_commit_paths_from_a_subdirectory(workdir):
    workdir.commit({"chasquid/domains/example.com/users": "old\n"})
    domain = workdir.path / "chasquid" / "domains" / "example.com"
    (domain / "users").write_text("new\n")

    gitwrite.commit_paths(domain, ["chasquid/domains/example.com/users"], "users")

    assert gitread.read_revision(workdir.path).data("chasquid/domains/example.com/users") == (
        b"new\n"
    )


def test_commit_paths_with_nothing_changed(workdir):
    workdir.commit({"users": "same\n"})
    head = workdir.git("rev-parse", "HEAD")

    with pytest.raises(RepoError) as caught:
        gitwrite.commit_paths(workdir.path, ["users"], "noop")
    assert caught.value.message == f"nothing to commit: users unchanged in {workdir.path}"
    assert workdir.git("rev-parse", "HEAD") == head


def test_commit_paths_makes_the_first_commit_of_an_empty_clone(workdir):
    (workdir.path / "users").write_text("first\n")

    commit = gitwrite.commit_paths(workdir.path, ["users"], "first")

    assert gitread.read_revision(workdir.path, commit).files == {"users": Entry(b"first\n")}
    assert gitread.parent_revision(workdir.path) is None


def test_commit_paths_needs_a_work_tree(origin):
    with pytest.raises(RepoError) as caught:
        gitwrite.commit_paths(origin.path, ["users"], "x")
    assert caught.value.message == f"{origin.path} has no working tree to commit from"
    assert caught.value.hint == "run this in a checkout (git clone) of the conf repo"


def test_commit_paths_reports_git_errors(workdir):
    workdir.commit({"a": "x"})

    with pytest.raises(RepoError) as caught:
        gitwrite.commit_paths(workdir.path, ["no-such-file"], "x")
    assert caught.value.message == (
        f"git add failed in {workdir.path}: fatal: pathspec 'no-such-file' did not match any files"
    )


def _git_log(repo: Path, pretty: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "log", "-1", f"--pretty={pretty}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_a_base_read_after_its_child_shares_only_what_is_the_same(workdir):
    tree = {f"d{i}/sub/f{j}": f"{i}.{j}\n" for i in range(3) for j in range(3)}
    base = workdir.commit({**tree, "top": "old\n", "gone/x": "x\n"}, "base")
    tip = workdir.commit({"d1/sub/f2": "changed\n", "top": None, "gone/x": None, "new": "n\n"})

    assert set(gitread.read_revision(workdir.path, tip).files) == {*tree, "new"}
    assert gitread.parent_revision(workdir.path, tip) == base
    again = gitread.read_revision(workdir.path, base)

    assert again.files == {path: Entry(data.encode()) for path, data in tree.items()} | {
        "top": Entry(b"old\n"),
        "gone/x": Entry(b"x\n"),
    }
    assert list(again.files) == workdir.git("ls-tree", "-r", "--name-only", base).split()
    assert gitread.parent_revision(workdir.path, base) is None


def test_a_missing_object_is_a_damaged_repo(workdir):
    workdir.commit({"a/b": "content\n"})
    blob = workdir.git("rev-parse", "HEAD:a/b").strip()
    (workdir.path / ".git" / "objects" / blob[:2] / blob[2:]).unlink()

    with pytest.raises(RepoError) as caught:
        gitread.read_revision(workdir.path)

    assert caught.value.message == f"object {blob} is missing from {workdir.path}"
    assert caught.value.hint == (
        "the clone may be partial or damaged: run `git fsck`, or fetch again"
    )


def test_a_sha256_repository(tmp_path, git_run):
    repo = tmp_path / "sha256"
    git_run(tmp_path, "init", "--quiet", "--object-format=sha256", str(repo))
    (repo / "dir").mkdir()
    (repo / "dir" / "file").write_text("x\n")
    git_run(repo, "add", "--all")
    git_run(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "m")

    snapshot = gitread.read_revision(repo)

    assert snapshot.files == {"dir/file": Entry(b"x\n")}
    assert snapshot.revision is not None and len(snapshot.revision) == 64
