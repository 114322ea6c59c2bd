"""The unit's CapabilityBoundingSet is what the code needs: enough, and each one needed.

A child runs gitops-mail's privileged steps under ``setpriv --bounding-set``
with the capabilities deploy/gitops-mail.service keeps: livefs stages, swaps
and restores a config dir where chasquid owns a domain directory (as
``chasquid-util`` run as chasquid leaves it); a child runs as another user
(``procs.Identity``: git as the repo owner, chasquid as chasquid); that child
is stopped. Then each capability is taken away in turn, and the step that
needs it fails.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[2] / "deploy" / "gitops-mail.service"
CHILD = """
import os, sys, tempfile
from pathlib import Path
from gitops_mail.core.tree import FileSpec
from gitops_mail.host import procs
from gitops_mail.host.livefs.configdir import LiveDir

config, state, uid, gid = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
chasquid = procs.Identity(uid, gid)

def livefs():
    live = LiveDir(config, state)
    tree = {"domains/example.com/aliases": FileSpec(b"a: b\\n", 0o640, "root", "chasquid"),
            "domains/example.com/users": FileSpec(b"", 0o640, "root", "chasquid")}
    staged = live.stage(tree)
    checkpoint = live.swap(staged)
    live.discard(staged)
    live.restore(checkpoint)
    live.cleanup(checkpoint)

def identity():
    said = procs.run(["sh", "-c", "id -u; id -g"], as_user=chasquid).text.split()
    assert said == [str(uid), str(gid)], said

def stop():
    with tempfile.TemporaryFile() as log:
        child = procs.start(["sleep", "60"], output=log.fileno(), as_user=chasquid)
        procs.stop(child, timeout=10)
        assert child.returncode == -15, child.returncode

for step in (livefs, identity, stop):
    try:
        step()
        print(step.__name__, "ok")
    except Exception as exc:
        print(step.__name__, "failed:", type(exc).__name__, exc)
"""


def unit_capabilities() -> list[str]:
    [found] = re.findall(r"^CapabilityBoundingSet=(.*)$", UNIT.read_text(), re.MULTILINE)
    return found.split()


@pytest.fixture
def chasquid_owned(tmp_path: Path) -> Path:
    """A config dir whose domain directory belongs to chasquid (0750), with its users file."""
    account = pwd.getpwnam("chasquid")
    domain = tmp_path / "chasquid" / "domains" / "example.com"
    domain.mkdir(parents=True)
    (domain / "users").write_bytes(b"")
    for path, mode in ((domain / "users", 0o640), (domain, 0o750)):
        os.chown(path, account.pw_uid, account.pw_gid)
        path.chmod(mode)
    return tmp_path / "chasquid"


def run_bounded(capabilities: list[str], config: Path) -> dict[str, str]:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    account = pwd.getpwnam("chasquid")
    keep = ",".join(f"+{c.removeprefix('CAP_').lower()}" for c in capabilities)
    argv = ["setpriv", f"--bounding-set=-all,{keep}", "--", sys.executable, "-c", CHILD]
    argv += [str(config), str(config.parent / "state"), str(account.pw_uid), str(account.pw_gid)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())


def test_the_units_capabilities_are_enough(chasquid_owned: Path) -> None:
    assert run_bounded(unit_capabilities(), chasquid_owned) == {
        "livefs": "ok",
        "identity": "ok",
        "stop": "ok",
    }


@pytest.mark.parametrize(
    ("dropped", "fails"),
    [
        ("CAP_CHOWN", "livefs"),  # the owner of each staged file and directory
        ("CAP_FOWNER", "livefs"),  # the mode of a directory chasquid owns
        ("CAP_DAC_OVERRIDE", "livefs"),  # reading and writing in it
        ("CAP_SETUID", "identity"),
        ("CAP_SETGID", "identity"),
        ("CAP_KILL", "stop"),  # a child that runs as another user
    ],
)
def test_each_capability_is_needed(chasquid_owned: Path, dropped: str, fails: str) -> None:
    kept = [c for c in unit_capabilities() if c != dropped]
    assert len(kept) == len(unit_capabilities()) - 1

    said = run_bounded(kept, chasquid_owned)

    assert said[fails].startswith("failed:"), said
    assert [step for step, how in said.items() if how != "ok"] == (
        ["identity", "stop"] if fails == "identity" else [fails]
    )
