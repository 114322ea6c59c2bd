"""The daemon's pass is bounded by the size limits: a push that skips the hooks still cannot
make the daemon read a large blob.

The sandbox's bare repo has no hooks, as when a pusher reaches the repo
some other way (or the hooks were never installed). Memory is the daemon
process's own ``VmHWM`` (peak resident set) from ``/proc``: reading the
200 MiB blob would raise it by at least that much (issue 9: 3.1 GB for a
400 MB blob).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.register_assert_rewrite("apply_fixtures", "daemon_fixtures")

from apply_fixtures import Sandbox, poll  # noqa: E402 - after the assertion rewrite is registered
from daemon_fixtures import SALES, StartDaemon, aliases, attempt  # noqa: E402

pytest_plugins = ["apply_fixtures", "daemon_fixtures"]
pytestmark = [pytest.mark.netns, pytest.mark.chasquid]

MIB = 1 << 20
GROWTH_MB = 16  # a pass over the small conf repo: +0.1 MB measured


def memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


def test_a_blob_over_the_limit_is_refused_by_the_daemon_without_being_read(
    sandbox: Sandbox, start_daemon: StartDaemon
) -> None:
    box = sandbox
    daemon = start_daemon(box)
    daemon.ready()
    live, before = box.tip(), box.tree()
    peak_before = memory_mb(daemon.child.pid, "VmHWM")

    big = box.commit({"blob.bin": bytes(200 * MIB)}, "a 200 MiB blob, no hooks on the way")

    refused = attempt(box, big, "invalid")
    assert (
        refused["reason"]
        == (  # whole: the problem and its hint
            f"revision {big[:7]} is too large to check; none of its files was read:\n"
            "blob.bin: error: 209,715,200 bytes, over the limit of 10,485,760 bytes for one file "
            "(limits.file_bytes)\n"
            "hint: make it smaller or remove it in a new commit; a host raises the limit in its "
            "settings"
        )
    )
    poll(lambda: daemon.status()["last_pass"]["revision"] == big, 10, "the end of the pass")
    assert memory_mb(daemon.child.pid, "VmHWM") - peak_before < GROWTH_MB
    assert box.tree() == before
    assert box.status()["live"] == live
    box.mail_works()

    fixed = box.commit({"blob.bin": None, **aliases("sales: ana\n")}, "remove the blob")
    attempt(box, fixed)
    assert box.rcpt(SALES) == 250
    assert [a["result"] for a in box.history() if a["revision"] == big] == ["invalid"]
    assert daemon.stop() == 0
