"""localfs on real directories: reading trees, atomic writes, writing trees."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_mail.core.snapshot import (
    MODE_EXEC,
    MODE_FILE,
    MODE_GITLINK,
    MODE_OTHER,
    MODE_SYMLINK,
    Entry,
)
from gitops_mail.errors import GitopsMailError
from gitops_mail.host.localfs import atomic_write, read_directory, write_tree


def test_read_directory_sees_links_exec_bits_fifos_and_empty_dirs(tmp_path):
    outside = tmp_path / "outside-secret"
    outside.write_text("never read\n")
    root = tmp_path / "tree"
    (root / "domains" / "empty.example").mkdir(parents=True)
    (root / "domains" / "example.com").mkdir()
    (root / "domains" / "example.com" / "users").write_text("u\n")
    (root / "hook").write_text("#!/bin/sh\n")
    (root / "hook").chmod(0o750)
    (root / "escape").symlink_to(outside)
    (root / "dir-link").symlink_to(tmp_path)
    os.mkfifo(root / "fifo")

    snapshot = read_directory(root)

    assert snapshot.files == {
        "dir-link": Entry(os.fsencode(tmp_path), MODE_SYMLINK),
        "domains/example.com/users": Entry(b"u\n", MODE_FILE),
        "escape": Entry(os.fsencode(outside), MODE_SYMLINK),
        "fifo": Entry(b"", MODE_OTHER),
        "hook": Entry(b"#!/bin/sh\n", MODE_EXEC),
    }
    assert snapshot.directories == {"domains", "domains/empty.example", "domains/example.com"}
    assert snapshot.source == f"working tree {root}"
    assert snapshot.revision is None


def test_read_directory_with_prefix_and_skip(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref\n")
    (tmp_path / "dns").mkdir()
    (tmp_path / "dns" / "example.com.zone").write_text("z\n")
    (tmp_path / "domains" / "x" / ".git").mkdir(parents=True)
    (tmp_path / "chasquid.conf").write_text("c\n")

    snapshot = read_directory(tmp_path, prefix="chasquid", skip={".git", "dns/example.com.zone"})

    assert snapshot.files == {"chasquid/chasquid.conf": Entry(b"c\n")}
    assert snapshot.directories == {
        "chasquid",
        "chasquid/dns",
        "chasquid/domains",
        "chasquid/domains/x",
    }


def test_read_directory_follows_a_symlinked_root(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a").write_text("x")
    (tmp_path / "etc-chasquid").symlink_to(tmp_path / "real")

    assert read_directory(tmp_path / "etc-chasquid").files == {"a": Entry(b"x")}


def test_read_directory_of_a_missing_root(tmp_path):
    with pytest.raises(GitopsMailError) as caught:
        read_directory(tmp_path / "missing")
    assert caught.value.message == f"{tmp_path / 'missing'} is not a directory"
    assert caught.value.hint == "pass the path of an existing directory"


_UNREADABLE_CHILD = """
import os
from pathlib import Path
from gitops_mail.errors import GitopsMailError
from gitops_mail.host.localfs import read_directory
if os.geteuid() == 0:  # root reads anything: become nobody, keeping the cwd
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
try:
    read_directory(Path("."))
except GitopsMailError as exc:
    print(exc.message)
    print(exc.hint)
"""


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_unreadable_entry_is_named_with_a_hint(tmp_path, kind):
    root = tmp_path / "tree"
    root.mkdir()
    root.chmod(0o755)
    (root / "ok").write_text("x")
    blocked = root / "blocked"
    if kind == "file":
        blocked.write_text("secret")
    else:
        blocked.mkdir()
    blocked.chmod(0)

    done = subprocess.run(
        [sys.executable, "-c", _UNREADABLE_CHILD],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.stderr == ""
    assert done.stdout.splitlines() == [
        "cannot read blocked: Permission denied",
        "check its permissions: gitops-mail must be able to read every file in the tree",
    ]


def test_atomic_write_creates_and_replaces(tmp_path):
    path = tmp_path / "users"
    atomic_write(path, b"first\n")
    assert path.read_bytes() == b"first\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644

    path.chmod(0o640)
    atomic_write(path, b"second\n")
    assert path.read_bytes() == b"second\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640

    atomic_write(path, b"third\n", mode=0o755)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    atomic_write(path, b"fourth\n", mode=MODE_FILE)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["users"]


def test_atomic_write_replaces_a_symlink_instead_of_following_it(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("keep\n")
    (tmp_path / "dir").mkdir()
    link = tmp_path / "dir" / "aliases"
    link.symlink_to(outside)

    atomic_write(link, b"new\n")

    assert not link.is_symlink()
    assert link.read_bytes() == b"new\n"
    assert outside.read_text() == "keep\n"


def test_atomic_write_when_the_parent_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "users"

    with pytest.raises(GitopsMailError) as caught:
        atomic_write(target, b"data")
    assert caught.value.message == f"cannot write {target}: Not a directory"
    assert caught.value.hint == "check that its directory exists, is a directory and is writable"
    assert os.listdir(tmp_path) == ["file"]


def test_atomic_write_failing_late_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "users"
    target.mkdir()
    (target / "inside").write_text("x")

    with pytest.raises(GitopsMailError) as caught:
        atomic_write(target, b"data")
    assert caught.value.message == f"cannot write {target}: Is a directory"
    assert os.listdir(tmp_path) == ["users"]
    assert os.listdir(target) == ["inside"]


def test_write_tree_creates_files_with_modes(tmp_path):
    root = tmp_path / "out"
    write_tree(
        root,
        {
            "chasquid/chasquid.conf": Entry(b"c\n"),
            "chasquid/hooks/post-data": Entry(b"#!/bin/sh\n", MODE_EXEC),
            "chasquid/certs/mail": Entry(b"../../live/mail", MODE_SYMLINK),
        },
    )

    assert read_directory(root).files == {
        "chasquid/chasquid.conf": Entry(b"c\n", MODE_FILE),
        "chasquid/hooks/post-data": Entry(b"#!/bin/sh\n", MODE_EXEC),
        "chasquid/certs/mail": Entry(b"../../live/mail", MODE_SYMLINK),
    }
    assert stat.S_IMODE((root / "chasquid/hooks/post-data").stat().st_mode) == 0o755

    write_tree(root, {"chasquid/certs/mail": Entry(b"elsewhere", MODE_SYMLINK)})
    assert os.readlink(root / "chasquid/certs/mail") == "elsewhere"
    assert sorted(os.listdir(root / "chasquid/certs")) == ["mail"]


@pytest.mark.parametrize("bad", ["../up", "/etc/passwd", "a/../../up", "", "nul\0byte"])
def test_write_tree_refuses_paths_outside_root_before_writing(tmp_path, bad):
    root = tmp_path / "out"
    with pytest.raises(GitopsMailError) as caught:
        write_tree(root, {"a-first": Entry(b"x"), bad: Entry(b"y")})
    assert caught.value.message == f"refusing to write {bad!r}: it is not a path inside {root}"
    assert caught.value.hint == "use a relative path without '..'"
    assert list(tmp_path.iterdir()) == []


def test_write_tree_refuses_to_write_through_a_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "out"
    root.mkdir()
    (root / "domains").symlink_to(outside)

    with pytest.raises(GitopsMailError) as caught:
        write_tree(root, {"domains/example.com/users": Entry(b"x")})
    assert caught.value.message == (
        f"refusing to write 'domains/example.com/users': {root / 'domains'} is not a directory"
    )
    assert list(outside.iterdir()) == []


def test_write_tree_refuses_entries_it_cannot_write(tmp_path):
    with pytest.raises(GitopsMailError) as caught:
        write_tree(tmp_path, {"module": Entry(b"", MODE_GITLINK)})
    assert caught.value.message == (
        "cannot write 'module': mode 160000 is neither a file nor a symlink"
    )
    assert list(tmp_path.iterdir()) == []


_names = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x2FF, exclude_characters="/"),
    min_size=1,
    max_size=8,
).filter(lambda n: n not in (".", "..", ".git"))
_entries = st.one_of(
    st.builds(Entry, st.binary(max_size=64), st.sampled_from([MODE_FILE, MODE_EXEC])),
    st.builds(Entry, _names.map(os.fsencode), st.just(MODE_SYMLINK)),
)


@settings(max_examples=100, deadline=None)
@given(
    tree=st.dictionaries(
        st.lists(_names, min_size=1, max_size=3).map("/".join), _entries, max_size=6
    )
)
def test_write_tree_then_read_directory_round_trips(tmp_path_factory, tree):
    paths = sorted(tree)
    if any(b.startswith(a + "/") for a in paths for b in paths):
        return  # a file cannot also be a directory
    root = tmp_path_factory.mktemp("tree")
    write_tree(root, tree)
    assert read_directory(root).files == tree
