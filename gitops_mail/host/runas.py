"""Whom chasquid runs as, and the command line that starts a program as that user.

Debian's ``chasquid.service`` runs chasquid as user and group ``chasquid``. So
does gitops-mail, under ``service: supervise`` and for the pre-flight: a
delivery agent, a hook or an alias command that chasquid starts never runs as
root. The user is ``chasquid.user`` in the host settings (``chasquid`` by
default, made by the chasquid package), looked up by name at each start; the
program gets its uid, its primary group and the groups it belongs to, as
systemd's ``User=`` gives them. Running as that user already, or as anyone but
root, nothing changes.

The switch is made by ``setpriv`` (util-linux), the one tool that can also keep
``CAP_NET_BIND_SERVICE`` across it as an ambient capability (the supervised
chasquid binds ports 25, 465 and 587) and ask the kernel to kill the program
when its parent dies (``--pdeathsig``, set after the switch, which clears it):
a pre-flight chasquid never outlives a killed gitops-mail.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gitops_mail.errors import CommandError, GitopsMailError

SETPRIV = "/usr/bin/setpriv"
DEFAULT_USER = "chasquid"
_BIND = "net_bind_service"


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int  # primary group


def lookup(name: str) -> User:
    """The user ``name``; a clear error when this host has none."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise GitopsMailError(
            f"there is no user {name!r} on this host to run chasquid as",
            "install the chasquid package (it makes the user and group chasquid), or name "
            "another user in chasquid.user in the host settings",
        ) from None
    return User(entry.pw_name, entry.pw_uid, entry.pw_gid)


def command(
    argv: Sequence[str | Path],
    user: User | None,
    *,
    bind_low_ports: bool = False,
    die_with_parent: bool = False,
) -> list[str]:
    """``argv`` as ``user`` (None: as we are), through ``setpriv`` when that changes anything.

    ``bind_low_ports`` keeps the right to listen on ports below 1024;
    ``die_with_parent`` has the kernel SIGKILL the program when the thread that
    started it ends.
    """
    options = []
    if switches(user) and user is not None:
        options += [f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups"]
        if bind_low_ports:
            options += [f"--inh-caps=+{_BIND}", f"--ambient-caps=+{_BIND}"]
    if die_with_parent:
        options.append("--pdeathsig=KILL")
    args = [str(a) for a in argv]
    return [SETPRIV, *options, "--", *args] if options else args


def switches(user: User | None) -> bool:
    """Whether running as ``user`` means becoming someone else (only root can)."""
    return user is not None and os.geteuid() == 0 and user.uid != 0


def require_executable(program: Path) -> None:
    """Refuse, as starting it directly would, a program that cannot be run at all.

    Through ``setpriv`` a missing program is only an exit code (127); this keeps it
    an error (``CommandError``, 127) rather than a verdict on a config.
    """
    if not (os.path.isfile(program) and os.access(program, os.X_OK)):
        reason = "no such file" if not os.path.lexists(program) else "not an executable file"
        raise CommandError(
            [str(program)], 127, "", f"{program}: {reason}", f"is {program} installed?"
        )
