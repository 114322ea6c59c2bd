"""The non-root pusher the trust-boundary tests rely on really is another user."""

from __future__ import annotations

import os
import subprocess

from support.pusher import Pusher, not_owned_by


def test_the_pusher_is_not_root_and_owns_what_it_makes(pusher: Pusher) -> None:
    assert pusher.uid != 0
    assert pusher.run(["id", "-u"]).stdout.strip() == str(pusher.uid)
    repo = pusher.bare_repo()
    work = pusher.clone(repo)
    first = pusher.commit(work, {"a.txt": "one\n"}, "first")
    pusher.push(work)

    assert pusher.git(repo, "rev-parse", "main").stdout.strip() == first
    assert list(not_owned_by(pusher.root, pusher.uid)) == []


def test_the_pusher_cannot_write_where_root_keeps_its_files(pusher: Pusher, tmp_path) -> None:
    target = tmp_path / "root-only"
    target.mkdir(mode=0o755)
    os.chown(target, 0, 0)
    done = pusher.run(["touch", str(target / "x")], check=False)
    assert done.returncode != 0
    assert not (target / "x").exists()


def test_root_reads_the_pushers_repo_that_git_alone_calls_dubious(pusher: Pusher) -> None:
    from gitops_mail.git import plumbing as gitplumbing  # noqa: PLC0415 - the code under test
    from gitops_mail.git import read as gitread  # noqa: PLC0415

    repo = pusher.bare_repo()
    work = pusher.clone(repo)
    tip = pusher.commit(work, {"a.txt": "one\n"}, "first")
    pusher.push(work)
    plain = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "main"], capture_output=True, text=True, check=False
    )
    assert "dubious ownership" in plain.stderr  # git's own guard, as root

    assert gitplumbing.resolve_revision(repo, "main") == tip
    assert gitread.read_revision(repo, "main").data("a.txt") == b"one\n"
