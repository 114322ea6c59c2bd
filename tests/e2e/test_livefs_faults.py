"""livefs against a running chasquid, and against faults that need root and a mount namespace.

A running chasquid keeps reading the directory it started in: a swap's
per-file replaces reach it on its next reload, and a restore brings the old
users back. A full disk (a tmpfs of 64 KiB), read-only mounts, an immutable
directory, a work dir that is a mount point of its own: each gives a clear
error naming the path, with a hint, and the live tree and the inventory stay
byte-identical. A config dir that is a mount of its own (systemd's
``ReadWritePaths=``) works: the work dir is inside it.
"""

from __future__ import annotations

import os
import smtplib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.livetree import Mounts, apply, fill, tree_state, users

from gitops_mail.core.tree import FileSpec
from gitops_mail.errors import GitopsMailError
from gitops_mail.host import preflight
from gitops_mail.host.livefs.configdir import LiveDir
from gitops_mail.host.livefs.scan import Change

Mount = Callable[..., Path]


OLD = {
    "chasquid.conf": FileSpec(b'hostname: "mail.example.com"\n'),
    "domains/a.org/users": users(b"#chasquid-userdb-v1\na\n"),
    "domains/b.org/users": users(b"#chasquid-userdb-v1\nb\n"),
}
NEW = {
    "chasquid.conf": FileSpec(b'hostname: "mx.example.com"\n'),
    "domains/a.org/users": users(b"#chasquid-userdb-v1\na2\n"),
    "domains/b.org/users": users(b"#chasquid-userdb-v1\nb2\n"),
    "domains/c.net/aliases": users(b"c: a@a.org\n"),
}
FULL_HINT = "the filesystem is full: free space there (df -h {})"


def leftovers(live: LiveDir) -> list[str]:
    """The work dir's entries, and the checkpoints in it."""
    checkpoints = [f"checkpoint/{c}" for c in os.listdir(live.work_dir / "checkpoint")]
    return sorted(os.listdir(live.work_dir)) + sorted(checkpoints)


def logs_in(server, user: str, password: str) -> bool:
    """AUTH PLAIN on submission: True when accepted, False on 535."""
    try:
        server.smtp(user=user, password=password).quit()
    except smtplib.SMTPAuthenticationError as exc:
        assert exc.smtp_code == 535
        return False
    return True


def test_a_running_chasquid_reads_the_swapped_tree_and_the_restored_one(
    tmp_path, make_config_dir, chasquid_server, wait_for
):
    site = make_config_dir(tmp_path / "site", users={"ana@example.test": "pw-ana"})
    server = chasquid_server(site)  # reloads users every second
    scratch = tmp_path / "scratch"
    (scratch / "domains" / "example.test").mkdir(parents=True)
    util = ["/usr/bin/chasquid-util", f"-C={scratch}", "user-add", "bob@example.test"]
    subprocess.run([*util, "--password=pw-bob"], check=True, capture_output=True)
    users_file = (scratch / "domains" / "example.test" / "users").read_bytes()
    live = LiveDir(site.path, tmp_path / "state")
    directory = site.path.stat().st_ino
    staged = live.stage({"domains/example.test/users": users(users_file)})
    assert staged.changes == (Change("domains/example.test/users", "update"),)
    assert preflight.preflight(staged.path).errors == ()

    checkpoint = live.swap(staged)

    wait_for(lambda: logs_in(server, "bob@example.test", "pw-bob"), what="bob's login")
    assert not logs_in(server, "ana@example.test", "pw-ana")
    live.restore(checkpoint)
    wait_for(lambda: logs_in(server, "ana@example.test", "pw-ana"), what="ana's login")
    assert not logs_in(server, "bob@example.test", "pw-bob")
    assert site.path.stat().st_ino == directory
    assert server.is_running()
    assert server.error_lines() == []


@pytest.fixture
def mount() -> Iterator[Mount]:
    """``mount(*args, target)`` runs mount(8); every mount is undone at teardown."""
    mounts = Mounts()
    yield mounts
    mounts.undo_all()


@pytest.fixture
def small_fs(tmp_path: Path, mount: Mount) -> Path:
    """A 64 KiB tmpfs holding the config dir (and the work dir inside it)."""
    (tmp_path / "fs").mkdir()
    return mount("-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", tmp_path / "fs")


@pytest.fixture
def live_small(tmp_path: Path, small_fs: Path) -> LiveDir:
    (small_fs / "chasquid").mkdir()
    (small_fs / "chasquid" / "README").write_bytes(b"foreign\n")
    live = LiveDir(small_fs / "chasquid", tmp_path / "state")
    apply(live, OLD)
    return live


def test_a_full_disk_while_staging_is_a_clear_error_and_touches_nothing(live_small, small_fs):
    live = live_small
    before, inventory = tree_state(live.config_dir), live.inventory()
    filler = fill(small_fs)

    with pytest.raises(GitopsMailError) as raised:
        live.stage(NEW)

    assert raised.value.message == (
        f"cannot stage {live.staging_dir}/chasquid.conf: No space left on device"
    )
    assert raised.value.hint == FULL_HINT.format(live.config_dir)
    assert tree_state(live.config_dir) == before
    assert live.inventory() == inventory
    assert leftovers(live) == ["checkpoint"]
    filler.unlink()
    apply(live, NEW)
    assert (live.config_dir / "domains/c.net/aliases").read_bytes() == b"c: a@a.org\n"


def test_a_full_disk_while_swapping_is_a_clear_error_and_touches_nothing(live_small, small_fs):
    live = live_small
    before, inventory = tree_state(live.config_dir), live.inventory()
    staged = live.stage(NEW)
    filler = fill(small_fs)

    with pytest.raises(GitopsMailError) as raised:
        live.swap(staged)

    assert raised.value.message == (
        f"cannot save a checkpoint of {live.config_dir} in {live.work_dir}: No space left on device"
    )
    assert raised.value.hint == FULL_HINT.format(live.config_dir)
    assert tree_state(live.config_dir) == before
    assert live.inventory() == inventory
    assert not live.journal_path.exists()
    assert live.recover() is None
    filler.unlink()
    apply(live, NEW)
    assert live.drift().foreign == ("README",)


def test_a_read_only_filesystem_is_a_clear_error(live_small, small_fs, mount):
    live = live_small
    before, inventory = tree_state(live.config_dir), live.inventory()
    mount("--bind", "-o", "ro", small_fs, small_fs)

    with pytest.raises(GitopsMailError) as raised:
        live.stage(NEW)

    assert raised.value.message == f"cannot stage {live.staging_dir}: Read-only file system"
    assert raised.value.hint == "the filesystem is mounted read-only: remount it read-write"
    assert tree_state(live.config_dir) == before
    assert live.inventory() == inventory


def test_a_read_only_bind_mount_on_the_config_dir_fails_before_any_change(live_small, mount):
    live = live_small
    before, inventory = tree_state(live.config_dir), live.inventory()
    mount("--bind", "-o", "ro", live.config_dir, live.config_dir)

    with pytest.raises(GitopsMailError) as raised:
        live.stage(NEW)  # the work dir is inside: staging is refused at once

    assert raised.value.message == f"cannot stage {live.staging_dir}: Read-only file system"
    assert raised.value.hint == "the filesystem is mounted read-only: remount it read-write"
    assert tree_state(live.config_dir) == before
    assert live.inventory() == inventory


def test_a_config_dir_that_is_a_mount_point_works(tmp_path, mount):
    config = tmp_path / "chasquid"
    config.mkdir()
    mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", config)
    live = LiveDir(config, tmp_path / "state")

    apply(live, OLD)
    apply(live, NEW)

    assert (config / "chasquid.conf").read_bytes() == NEW["chasquid.conf"].data
    assert live.drift().clean
    assert sorted(os.listdir(tmp_path)) == ["chasquid", "state"]  # nothing written beside it


def test_a_work_dir_that_is_a_mount_point_is_refused(tmp_path, mount):
    config = tmp_path / "chasquid"
    (config / ".gitops-mail").mkdir(parents=True)
    mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", config / ".gitops-mail")
    live = LiveDir(config, tmp_path / "state")

    with pytest.raises(GitopsMailError) as raised:
        live.stage(OLD)

    assert raised.value.message == (
        f"{config} and {config}/.gitops-mail are on different filesystems"
    )
    assert raised.value.hint == (
        f"gitops-mail keeps its scratch space inside {config} (.gitops-mail/), so that every "
        "rename stays on one filesystem and mount; is a directory inside the config dir a mount "
        "point or a bind mount? Keep the whole config dir on one mount"
    )
    assert os.listdir(config) == [".gitops-mail"]


def test_an_immutable_directory_mid_swap_is_rolled_back_on_the_spot(tmp_path):
    config = tmp_path / "etc" / "chasquid"
    config.mkdir(parents=True)
    live = LiveDir(config, tmp_path / "state")
    apply(live, OLD)
    before, inventory = tree_state(config), live.inventory()
    staged = live.stage(NEW)
    subprocess.run(["chattr", "+i", config / "domains" / "b.org"], check=True)
    try:
        with pytest.raises(GitopsMailError) as raised:
            live.swap(staged)
    finally:
        subprocess.run(["chattr", "-i", config / "domains" / "b.org"], check=True)

    assert raised.value.message == (
        f"cannot change {config}/domains/b.org/users: Operation not permitted; "
        "the live tree was restored"
    )
    assert raised.value.hint == (
        f"run gitops-mail as root, and check that nothing under {config.parent} "
        "is immutable (lsattr) or on a read-only mount"
    )
    assert tree_state(config) == before
    assert live.inventory() == inventory
    assert leftovers(live) == ["checkpoint", "staging"]  # the half-used stage, until discard
    live.discard(staged)
    apply(live, NEW)
    assert (config / "domains/b.org/users").read_bytes() == b"#chasquid-userdb-v1\nb2\n"


def test_an_unwritable_state_dir_rolls_the_swap_back(tmp_path, mount):
    config = tmp_path / "etc" / "chasquid"
    config.mkdir(parents=True)
    live = LiveDir(config, tmp_path / "state")
    apply(live, OLD)
    before, inventory = tree_state(config), live.inventory()
    staged = live.stage(NEW)
    mount("--bind", "-o", "ro", live.state_dir, live.state_dir)

    with pytest.raises(GitopsMailError) as raised:
        live.swap(staged)

    assert raised.value.message == (
        f"cannot write the inventory {live.state_dir}/inventory.json: Read-only file system; "
        "the live tree was restored"
    )
    assert tree_state(config) == before
    assert live.inventory() == inventory
    assert not live.journal_path.exists()
