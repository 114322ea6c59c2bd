"""livefs on real directories: stage, swap, restore, drift, crashes at every phase."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.livetree import CHASQUID_GID, TreeEntry, apply, entry, tree_state, users

from gitops_mail.core.tree import FileSpec
from gitops_mail.errors import GitopsMailError
from gitops_mail.host.livefs.configdir import FAULT_ENV, LiveDir
from gitops_mail.host.livefs.scan import Change, Drift

# --- helpers -------------------------------------------------------------------


def F(data: bytes, mode: int = 0o644, gid: int = 0) -> TreeEntry:
    return "file", mode, 0, gid, data


def D(mode: int = 0o755) -> TreeEntry:
    return "dir", mode, 0, 0, b""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def work_entries(live: LiveDir) -> list[str]:
    """What is left in the work dir: no journal, no staging, no checkpoints."""
    root = live.work_dir
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "chasquid"
    path.mkdir(parents=True)
    path.chmod(0o755)
    return path


@pytest.fixture
def live(tmp_path: Path, config: Path) -> LiveDir:
    return LiveDir(config, tmp_path / "state")


BASE = {
    "chasquid.conf": FileSpec(b'hostname: "mail.example.com"\n'),
    "domains/example.com/users": users(b"#chasquid-userdb-v1\n"),
    "domains/example.com/aliases": users(b"postmaster: ana\n"),
    "hooks/post-data": FileSpec(b"#!/bin/sh\nexit 0\n", 0o755),
}
BASE_STATE = {
    ".": D(),
    "chasquid.conf": F(b'hostname: "mail.example.com"\n'),
    "domains": D(),
    "domains/example.com": D(),
    "domains/example.com/aliases": F(b"postmaster: ana\n", 0o640, CHASQUID_GID),
    "domains/example.com/users": F(b"#chasquid-userdb-v1\n", 0o640, CHASQUID_GID),
    "hooks": D(),
    "hooks/post-data": F(b"#!/bin/sh\nexit 0\n", 0o755),
}


def debian_dir(config: Path) -> None:
    """/etc/chasquid as Debian's package leaves it."""
    (config / "domains").mkdir()
    (config / "certs").mkdir()
    (config / "hooks").mkdir()
    (config / "README").write_bytes(b"Debian README\n")
    (config / "chasquid.conf").write_bytes(b"# Debian's commented chasquid.conf\n")
    (config / "certs" / "README.certs").write_bytes(b"put certificates here\n")
    (config / "hooks" / "post-data").write_bytes(b"#!/bin/bash\n# Debian's hook\n")
    (config / "hooks" / "post-data").chmod(0o755)


# --- stage and swap ---------------------------------------------------------------


def test_first_apply_creates_the_tree_with_modes_and_owners(live, config):
    staged = live.stage(BASE)

    assert staged.changes == (
        Change("chasquid.conf", "create"),
        Change("domains/example.com/aliases", "create"),
        Change("domains/example.com/users", "create"),
        Change("hooks/post-data", "create"),
    )
    assert tree_state(staged.path) == BASE_STATE
    assert tree_state(config) == {".": D()}  # staging touched nothing live
    assert staged.path == config / ".gitops-mail" / "staging"  # inside: one mount

    checkpoint = live.swap(staged)

    assert tree_state(config) == BASE_STATE
    assert live.inventory() == {path: sha(spec.data) for path, spec in BASE.items()}
    assert live.drift() == Drift(modified=(), missing=(), foreign=())
    assert not live.journal_path.exists()
    live.cleanup(checkpoint)
    live.discard(staged)
    live.discard(staged)  # idempotent
    assert work_entries(live) == ["checkpoint"]


def test_update_remove_chmod_and_restore(live, config):
    apply(
        live,
        {**BASE, "domains/b.org/users": users(b"b\n"), "certs/m/cert.pem": BASE["hooks/post-data"]},
    )
    before = tree_state(config)
    inventory_before = live.inventory()
    new = {
        **BASE,
        "chasquid.conf": FileSpec(b'hostname: "mx.example.com"\n'),
        "domains/example.com/users": FileSpec(b"#chasquid-userdb-v1\n", 0o600, "root", "root"),
        "domains/c.net/aliases": users(b"c: d\n"),
    }

    staged = live.stage(new)

    assert staged.changes == (
        Change("certs/m/cert.pem", "remove"),
        Change("chasquid.conf", "update"),
        Change("domains/b.org/users", "remove"),
        Change("domains/c.net/aliases", "create"),
        Change("domains/example.com/users", "chmod"),
    )
    assert staged.new_dirs == ("domains/c.net",)
    assert staged.gone_dirs == ("domains/b.org", "certs/m")
    checkpoint = live.swap(staged)
    after = {
        **BASE_STATE,
        "certs": D(),  # top-level directories stay
        "chasquid.conf": F(b'hostname: "mx.example.com"\n'),
        "domains/c.net": D(),
        "domains/c.net/aliases": F(b"c: d\n", 0o640, CHASQUID_GID),
        "domains/example.com/users": F(b"#chasquid-userdb-v1\n", 0o600),
    }
    assert tree_state(config) == dict(sorted(after.items()))
    assert live.inventory() == {path: sha(spec.data) for path, spec in new.items()}

    live.restore(checkpoint)

    assert tree_state(config) == before
    assert live.inventory() == inventory_before
    assert not live.journal_path.exists()
    live.cleanup(checkpoint)
    live.discard(staged)
    assert work_entries(live) == ["checkpoint"]


def test_an_unchanged_tree_has_no_changes(live, config):
    apply(live, BASE)

    staged = live.stage(BASE)

    assert staged.changes == ()
    assert tree_state(staged.path) == BASE_STATE
    live.cleanup(live.swap(staged))
    assert tree_state(config) == BASE_STATE


def test_restore_of_a_first_apply_leaves_no_inventory(live, config, tmp_path):
    checkpoint = live.swap(live.stage(BASE))

    live.restore(checkpoint)

    assert tree_state(config) == {".": D()}
    assert not (tmp_path / "state" / "inventory.json").exists()
    assert live.inventory() == {}


# --- foreign files and drift --------------------------------------------------------


def test_first_apply_onto_debians_plain_directory(live, config):
    debian_dir(config)
    assert live.inventory() == {}
    assert live.drift() == Drift(
        modified=(),
        missing=(),
        foreign=("README", "certs/README.certs", "chasquid.conf", "hooks/post-data"),
    )
    debian_hook = entry(config / "hooks" / "post-data")
    tree = {
        "chasquid.conf": FileSpec(b'hostname: "mail.example.com"\n'),
        "domains/example.com/users": users(b"#chasquid-userdb-v1\n"),
        "certs/mail.example.com/fullchain.pem": FileSpec(b"CERT\n"),
        "certs/mail.example.com/privkey.pem": users(b"KEY\n"),
    }

    staged = live.stage(tree)

    assert staged.changes == (
        Change("certs/mail.example.com/fullchain.pem", "create"),
        Change("certs/mail.example.com/privkey.pem", "create"),
        Change("chasquid.conf", "update"),
        Change("domains/example.com/users", "create"),
    )
    assert staged.adopted == ("chasquid.conf",)
    expected = {
        ".": D(),
        "README": F(b"Debian README\n"),
        "certs": D(),
        "certs/README.certs": F(b"put certificates here\n"),
        "certs/mail.example.com": D(),
        "certs/mail.example.com/fullchain.pem": F(b"CERT\n"),
        "certs/mail.example.com/privkey.pem": F(b"KEY\n", 0o640, CHASQUID_GID),
        "chasquid.conf": F(b'hostname: "mail.example.com"\n'),
        "domains": D(),
        "domains/example.com": D(),
        "domains/example.com/users": F(b"#chasquid-userdb-v1\n", 0o640, CHASQUID_GID),
        "hooks": D(),
        "hooks/post-data": debian_hook,
    }
    assert tree_state(staged.path) == expected  # the whole future tree, foreign files too
    readme_inode = (config / "README").stat().st_ino

    checkpoint = live.swap(staged)
    live.cleanup(checkpoint)

    assert tree_state(config) == expected
    assert (config / "README").stat().st_ino == readme_inode  # never rewritten
    assert live.drift() == Drift(
        modified=(), missing=(), foreign=("README", "certs/README.certs", "hooks/post-data")
    )
    kept = live.work_dir / "adopted" / checkpoint.id / "chasquid.conf"
    assert kept.read_bytes() == b"# Debian's commented chasquid.conf\n"


def test_foreign_files_stay_when_the_tree_changes(live, config):
    debian_dir(config)
    apply(live, {p: spec for p, spec in BASE.items() if p != "hooks/post-data"})
    (config / "domains" / "example.com" / "notes.txt").write_bytes(b"mine\n")

    apply(live, {"chasquid.conf": BASE["chasquid.conf"]})

    state = tree_state(config)
    assert state["README"] == F(b"Debian README\n")
    assert state["hooks/post-data"] == F(b"#!/bin/bash\n# Debian's hook\n", 0o755)
    assert state["domains/example.com/notes.txt"] == F(b"mine\n")
    assert "domains/example.com/users" not in state
    assert "domains/example.com" in state  # still holds a foreign file
    assert live.drift().foreign == (
        "README",
        "certs/README.certs",
        "domains/example.com/notes.txt",
        "hooks/post-data",
    )


def test_drift_reports_hand_edits_deletions_and_additions(live, config):
    apply(live, BASE)
    (config / "domains" / "example.com" / "users").write_bytes(b"edited by hand\n")
    (config / "domains" / "example.com" / "aliases").unlink()
    (config / "domains" / "example.com" / "extra").write_bytes(b"added by hand\n")
    (config / "chasquid.conf").unlink()
    (config / "chasquid.conf").symlink_to("/etc/hostname")

    assert live.drift() == Drift(
        modified=("chasquid.conf", "domains/example.com/users"),
        missing=("domains/example.com/aliases",),
        foreign=("domains/example.com/extra",),
    )
    staged = live.stage(BASE)
    assert staged.changes == (
        Change("chasquid.conf", "update"),
        Change("domains/example.com/aliases", "create"),
        Change("domains/example.com/users", "update"),
    )
    live.cleanup(live.swap(staged))
    assert tree_state(config) == {
        **BASE_STATE,
        "domains/example.com/extra": F(b"added by hand\n"),
    }
    assert live.drift() == Drift((), (), ("domains/example.com/extra",))


def test_foreign_symlinks_are_staged_so_they_still_point_to_the_same_place(live, config):
    (config / "certs").mkdir()
    (config / "certs" / "m").symlink_to("../../letsencrypt/live/m")
    (config / "certs" / "inside").symlink_to("../chasquid.conf")

    staged = live.stage({"chasquid.conf": FileSpec(b"c\n")})

    assert os.readlink(staged.path / "certs" / "m") == str(config.parent / "letsencrypt/live/m")
    assert os.readlink(staged.path / "certs" / "inside") == "../chasquid.conf"


# --- bad input: clear errors, nothing touched ------------------------------------------


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a//b", "a/./b", "a/..", ""])
def test_paths_outside_the_config_dir_are_refused(live, config, path):
    with pytest.raises(GitopsMailError) as raised:
        live.stage({path: FileSpec(b"x")})

    assert raised.value.message == (
        f"refusing to install {path!r}: not a relative path inside the config dir"
    )
    assert (
        raised.value.hint == "use a POSIX path like domains/example.com/users, without '.' or '..'"
    )
    assert tree_state(config) == {".": D()}
    assert not live.work_dir.exists()


def test_unknown_owner_and_group_are_named(live):
    with pytest.raises(GitopsMailError) as raised:
        live.stage({"a": FileSpec(b"x", owner="no-such-user")})
    assert raised.value.message == "user 'no-such-user' (owner of a) does not exist"
    assert raised.value.hint.startswith("install chasquid (its package creates the chasquid")

    with pytest.raises(GitopsMailError) as raised:
        live.stage({"d/users": FileSpec(b"x", group="no-such-group")})
    assert raised.value.message == "group 'no-such-group' (group of d/users) does not exist"
    assert not live.work_dir.exists()


def test_a_missing_config_dir_is_a_clear_error(tmp_path):
    live = LiveDir(tmp_path / "nowhere" / "chasquid", tmp_path / "state")

    for call in (lambda: live.stage(BASE), live.drift):
        with pytest.raises(GitopsMailError) as raised:
            call()
        assert raised.value.message == (
            f"chasquid's config dir {tmp_path}/nowhere/chasquid does not exist "
            "or is not a directory"
        )
        assert raised.value.hint == (
            "install chasquid (its package creates it) "
            "or fix chasquid.config_dir in the host settings"
        )
    assert not (tmp_path / "nowhere").exists()


def test_a_foreign_symlink_or_directory_in_the_way_is_refused(live, config, tmp_path):
    (tmp_path / "etc" / "letsencrypt").mkdir()
    (config / "certs").mkdir()
    (config / "certs" / "m").symlink_to(tmp_path / "etc" / "letsencrypt")
    (config / "chasquid.conf").mkdir()
    before = tree_state(config)

    with pytest.raises(GitopsMailError) as raised:
        live.stage({"certs/m/fullchain.pem": FileSpec(b"x")})
    assert raised.value.message == (
        f"{config}/certs/m is not a directory (a file or symlink), "
        "but the desired tree has certs/m/fullchain.pem under it"
    )
    assert raised.value.hint == "move it away by hand, then apply again"

    with pytest.raises(GitopsMailError) as raised:
        live.stage({"chasquid.conf": FileSpec(b"x")})
    assert raised.value.message == (
        f"{config}/chasquid.conf is a directory, but the desired tree has a file there"
    )
    assert tree_state(config) == before
    assert os.listdir(tmp_path / "etc" / "letsencrypt") == []


def test_a_file_and_files_under_it_in_one_tree_are_refused(live):
    with pytest.raises(GitopsMailError) as raised:
        live.stage({"a": FileSpec(b"x"), "a/b": FileSpec(b"y")})
    assert raised.value.message == "the desired tree has both a file a and files under it"


def test_swap_of_a_discarded_stage_is_refused(live, config):
    staged = live.stage(BASE)
    live.discard(staged)

    with pytest.raises(GitopsMailError) as raised:
        live.swap(staged)

    assert raised.value.message == f"the staged tree {staged.path} is gone"
    assert tree_state(config) == {".": D()}


# --- crashes: SIGKILL at every phase, then recover ----------------------------------------

CHILD = """
import json, sys
from pathlib import Path
from gitops_mail.core.tree import FileSpec
from gitops_mail.host.livefs.configdir import LiveDir
config, state, spec, action = sys.argv[1:]
tree = {p: FileSpec(d.encode("latin-1"), m, o, g) for p, (d, m, o, g) in json.loads(spec).items()}
live = LiveDir(Path(config), Path(state))
checkpoint = live.swap(live.stage(tree))
if action == "restore":
    live.restore(checkpoint)
"""

OLD = {
    **BASE,
    "domains/gone.org/users": users(b"#chasquid-userdb-v1\ngone\n"),
    "certs/old/privkey.pem": users(b"OLD KEY\n"),
}
NEW = {
    "chasquid.conf": FileSpec(b'hostname: "mx.example.com"\n'),
    "domains/example.com/users": FileSpec(b"#chasquid-userdb-v1\nnew\n", 0o600),
    "domains/example.com/aliases": BASE["domains/example.com/aliases"],
    "domains/new.net/users": users(b"#chasquid-userdb-v1\n"),
    "README": FileSpec(b"now managed\n"),
    "hooks/post-data": FileSpec(b"#!/bin/sh\nexit 0\n", 0o700),
}


def run_child(live: LiveDir, tree: dict[str, FileSpec], fault: str, action: str) -> int:
    spec = {p: [s.data.decode("latin-1"), s.mode, s.owner, s.group] for p, s in tree.items()}
    argv = [sys.executable, "-c", CHILD, str(live.config_dir), str(live.state_dir)]
    env = {**os.environ, FAULT_ENV: fault}
    done = subprocess.run([*argv, json.dumps(spec), action], env=env, check=False)
    return done.returncode


@pytest.mark.parametrize(
    ("fault", "action"),
    [
        ("after-checkpoint", "swap"),
        ("after-journal", "swap"),
        ("mid-replace", "swap"),
        ("after-replace", "swap"),
        ("after-inventory", "swap"),
        ("mid-restore", "restore"),
    ],
)
def test_a_crash_at_any_phase_is_rolled_back_and_the_next_swap_converges(
    live, config, fault, action
):
    (config / "README").write_bytes(b"foreign, adopted by NEW\n")
    (config / "domains" / "example.com").mkdir(parents=True)
    (config / "domains" / "example.com" / "mine").write_bytes(b"foreign\n")
    apply(live, OLD)
    before, inventory_before = tree_state(config), live.inventory()

    assert run_child(live, NEW, fault, action) == -signal.SIGKILL

    if fault != "after-checkpoint":  # a journal: nothing goes on before it is rolled back
        with pytest.raises(GitopsMailError) as raised:
            live.stage(NEW)
        assert raised.value.message == f"{live.journal_path} shows an interrupted swap or restore"
    message = live.recover()
    if fault == "after-checkpoint":
        assert message is None
    else:
        assert message == (
            f"an interrupted {action} in {config} was rolled back: 7 files are as they "
            "were before it"
        )
    assert tree_state(config) == before
    assert live.inventory() == inventory_before
    assert work_entries(live) == ["checkpoint"]
    assert live.recover() is None

    apply(live, NEW)
    state = tree_state(config)
    assert state["domains/example.com/mine"] == F(b"foreign\n")
    assert {p for p, e in state.items() if e[0] != "dir"} == {*NEW, "domains/example.com/mine"}
    assert "domains/gone.org" not in state
    assert "certs/old" not in state
    assert live.drift() == Drift((), (), ("domains/example.com/mine",))


def test_an_unknown_fault_name_does_nothing(live, config):
    assert run_child(live, BASE, "no-such-point", "swap") == 0
    assert tree_state(config) == BASE_STATE


# --- fuzz: swap then restore is the identity; swap gives the desired tree ---------------

PATHS = ["f1", "f2", "d1/f1", "d1/e/f2", "d2/f1", "d2/f2"]  # d1, d1/e, d2 are always dirs
SPECS = st.builds(
    FileSpec,
    data=st.binary(max_size=40),
    mode=st.sampled_from([0o644, 0o640, 0o600, 0o755]),
    owner=st.just("root"),
    group=st.sampled_from(["root", "chasquid"]),
)
# tmpfs when there is one: fsync is free there, and the logic under test is the same
FAST_SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None
TREES = st.dictionaries(st.sampled_from(PATHS), SPECS, max_size=len(PATHS))
FOREIGN = st.dictionaries(st.sampled_from(PATHS), st.binary(max_size=20), max_size=3)


@settings(max_examples=150, deadline=None)
@given(foreign=FOREIGN, old=TREES, new=TREES)
def test_swap_gives_the_desired_tree_and_restore_undoes_it(foreign, old, new):
    with tempfile.TemporaryDirectory(dir=FAST_SCRATCH) as scratch:
        config = Path(scratch, "chasquid")
        config.mkdir()
        for path, data in foreign.items():
            (config / path).parent.mkdir(parents=True, exist_ok=True)
            (config / path).write_bytes(data)
        live = LiveDir(config, Path(scratch, "state"))
        apply(live, old)
        before, inventory_before = tree_state(config), live.inventory()

        checkpoint = live.swap(live.stage(new))

        state = tree_state(config)
        kept = {p: F(d) for p, d in foreign.items() if p not in old and p not in new}
        wanted = {
            p: F(s.data, s.mode, 0 if s.group == "root" else CHASQUID_GID) for p, s in new.items()
        }
        assert {p: e for p, e in state.items() if e[0] != "dir"} == {**kept, **wanted}
        live.restore(checkpoint)
        assert tree_state(config) == before
        assert live.inventory() == inventory_before
