"""Throwaway directories a ``kill -9`` cannot leak for long (``host.scratch``)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gitops_mail.errors import GitopsMailError
from gitops_mail.host.scratch import remove_leftovers, scratch_dir

# Makes a scratch dir, says where, and waits there to be killed.
HOLD = """
import sys, time
from pathlib import Path
from gitops_mail.host.scratch import scratch_dir
with scratch_dir(Path(sys.argv[1]), "preflight-") as path:
    (path / "queue").mkdir()
    print(path, flush=True)
    time.sleep(600)
"""


def test_a_scratch_dir_is_removed_on_leaving_and_given_to_its_owner(tmp_path: Path) -> None:
    with scratch_dir(tmp_path, "preflight-", owner=(65534, 65534)) as path:
        assert path.parent == tmp_path
        assert path.name.startswith("preflight-")
        info = path.stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (65534, 65534, 0o700)
    assert list(tmp_path.iterdir()) == []


def test_what_a_killed_process_left_is_removed_by_the_next_but_not_what_is_in_use(
    tmp_path: Path,
) -> None:
    killed = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    running = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert killed.stdout is not None and running.stdout is not None
        left, in_use = Path(killed.stdout.readline().strip()), running.stdout.readline().strip()
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        assert left.is_dir()

        with scratch_dir(tmp_path, "preflight-") as mine:
            assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
                [mine.name, Path(in_use).name]
            )
    finally:
        running.kill()
        running.wait(timeout=30)
    assert not left.exists()
    assert remove_leftovers(tmp_path, "preflight-") == [Path(in_use)]
    assert list(tmp_path.iterdir()) == []


def test_only_directories_with_the_prefix_are_touched(tmp_path: Path) -> None:
    (tmp_path / "staging").mkdir()
    (tmp_path / "preflight-file").write_text("not a directory of ours\n")
    (tmp_path / "preflight-link").symlink_to(tmp_path / "staging")
    held = tmp_path / "preflight-held"
    held.mkdir()
    fd = os.open(held, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert remove_leftovers(tmp_path, "preflight-") == []
    finally:
        os.close(fd)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "preflight-file",
        "preflight-held",
        "preflight-link",
        "staging",
    ]
    assert remove_leftovers(tmp_path, "preflight-") == [held]


def test_a_place_that_cannot_hold_one_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GitopsMailError) as caught, scratch_dir(tmp_path / "missing", "x-"):
        pytest.fail("made a scratch dir in a missing directory")
    assert caught.value.message == (
        f"cannot make a work directory in {tmp_path / 'missing'}: No such file or directory"
    )
