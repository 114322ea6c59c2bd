"""The non-root pusher the trust-boundary tests rely on really is another user."""

from __future__ import annotations

import os

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
