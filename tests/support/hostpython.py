"""A Python with gitops-mail that every user may run, for hooks that run as the pusher.

git runs receive hooks as the pushing user, and ``gitops-mail hooks install``
records the interpreter that installed them. On a server that is a
world-readable install; here the test interpreter lives under /root (0700),
out of the pusher's reach. ``open_python(where)`` writes a launcher in
``where`` (which the pusher must be able to enter): the system's
``/usr/bin/python3`` (the same minor version, so the same compiled
extensions) over this environment's site-packages and this checkout.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import gitops_mail

SYSTEM_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")


def open_python(where: Path) -> Path:
    """The launcher's path (mode 0755); fails the test run if no system Python matches."""
    if not SYSTEM_PYTHON.exists():
        raise RuntimeError(f"{SYSTEM_PYTHON} is needed to run hooks as another user")
    site = sysconfig.get_paths()["purelib"]
    checkout = Path(gitops_mail.__file__).resolve().parent.parent
    launcher = where / "python"
    launcher.write_text(f'#!/bin/sh\nPYTHONPATH="{site}:{checkout}" exec {SYSTEM_PYTHON} "$@"\n')
    launcher.chmod(0o755)
    return launcher
