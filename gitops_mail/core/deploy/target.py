"""``[USER@]HOST[:PORT]`` as given to ``gitops-mail deploy``: where to log in, and a name.

The name is what progress lines, the summary and the conf repo's remote use
for the host. Today it is the host part as given; a manifest that names its
hosts (``hosts: {mx1: ...}``) can pass its own name instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gitops_mail.errors import UsageError

_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])$")
_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Target:
    spec: str  # as given on the command line
    host: str  # a name or an address; IPv6 without brackets
    user: str | None = None  # None: the SSH config's, else the local user's
    port: int | None = None  # None: the SSH config's, else 22
    name: str = ""  # how progress, the summary and the git remote call it

    @property
    def remote_suffix(self) -> str:
        """The name made safe for a git remote (``vps-<suffix>``)."""
        return _NAME.sub("-", self.name).strip("-.") or "host"


def parse_target(spec: str) -> Target:
    """``root@203.0.113.7``, ``admin@mx1.example.com:2222``, ``[2001:db8::7]:22``, ``vps``."""
    user, at, rest = spec.rpartition("@")
    host, port = _split_port(rest, spec)
    if (at and not _USER.match(user)) or not _HOST.match(host):
        raise UsageError(
            f"{spec!r} is not a host to deploy to",
            "give [USER@]HOST[:PORT], e.g. root@203.0.113.7 or admin@mx1.example.com:2222",
        )
    bare = host.strip("[]")
    return Target(spec, bare, user or None, port, name=bare)


def _split_port(rest: str, spec: str) -> tuple[str, int | None]:
    if rest.startswith("["):
        host, _, after = rest.partition("]")
        host += "]"
        if not after:
            return host, None
        if not after.startswith(":"):
            return rest, None  # not a valid host: reported by the caller
        number = after[1:]
    elif rest.count(":") == 1:
        host, _, number = rest.partition(":")
    else:
        return rest, None
    if not number.isdigit() or not 0 < int(number) < 65536:
        raise UsageError(f"{spec!r}: the port must be a number from 1 to 65535")
    return host, int(number)


def remote_names(targets: list[Target], base: str) -> dict[str, str]:
    """The conf repo's remote for each target: ``base`` alone, ``base-<name>`` for several."""
    if len(targets) == 1:
        return {targets[0].spec: base}
    return {t.spec: f"{base}-{t.remote_suffix}" for t in targets}
