"""What tests give the ``chasquid`` user, whom the supervisor and the pre-flight run chasquid as.

pytest's temporary directories are root's and 0700 from /tmp/pytest-of-root
down (and every pytest session that starts makes that one 0700 again), so
chasquid (not root) cannot reach a config dir there. ``reachable_dir(name)``
makes a directory it can reach instead: /tmp/gitops-chasquid-NAME-*, root's,
0711 (searched, never listed by others), removed afterwards. ``give(path)``
makes a file or directory chasquid's own (its data dir, its mail log, the
mailboxes its delivery agent writes); ``as_installed(root)`` gives a tree made
by a test the group and modes gitops-mail installs (0640 root:chasquid).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

USER = "chasquid"


def ids() -> tuple[int, int]:
    """chasquid's uid and primary gid (the chasquid package made the user)."""
    entry = pwd.getpwnam(USER)
    return entry.pw_uid, entry.pw_gid


@contextlib.contextmanager
def reachable_dir(name: str) -> Iterator[Path]:
    """A fresh directory chasquid can reach (root's, 0711, in /tmp), removed afterwards."""
    label = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:40]
    path = Path(tempfile.mkdtemp(prefix=f"gitops-chasquid-{label}-", dir="/tmp"))
    try:
        path.chmod(0o711)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def give(path: Path, *, directory: bool = False) -> Path:
    """``path`` made (empty) if missing and owned by chasquid; ``path``."""
    if directory:
        path.mkdir(parents=True, exist_ok=True)
    elif not path.exists():
        path.touch()
    os.chown(path, *ids())
    return path


def as_installed(root: Path) -> Path:
    """Every file and directory under ``root`` in group chasquid, group-readable (searchable),
    as gitops-mail installs a config dir (secrets 0640 root:chasquid); ``root``."""
    gid = ids()[1]
    for path in (root, *root.rglob("*")):
        if path.is_symlink():
            continue
        os.chown(path, -1, gid)
        extra = stat.S_IRGRP | (stat.S_IXGRP if path.is_dir() else 0)
        path.chmod(stat.S_IMODE(path.stat().st_mode) | extra)
    return root


def status_of(pid: int) -> dict[str, str]:
    """``/proc/PID/status`` as a mapping: ``Uid``, ``Gid``, ``Groups``, ``CapEff``, ``CapAmb``..."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)
