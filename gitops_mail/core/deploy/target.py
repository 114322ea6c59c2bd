"""``[USER@]HOST[:PORT]`` as given to ``gitops-mail deploy``: where to log in, and a name.

The name is what progress lines, the summary and the conf repo's remote use
for the host: the host part as given, or, when the manifest names its hosts
(``hosts: {mx1: ...}``), the manifest's name for it. ``NAME=[USER@]HOST[:PORT]``
says it (``mx1=root@203.0.113.7``); without ``NAME=`` a target is the host
whose name, ``hostname`` or an address it is (``assign_hosts``). That name
goes into the host's settings as ``host: NAME``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from gitops_mail.core.manifest.hosts import NAME_RULE, HostEntry
from gitops_mail.errors import UsageError

_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])$")
_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_MANIFEST_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")  # as hosts.NAME_RULE says


@dataclass(frozen=True)
class Target:
    spec: str  # as given on the command line
    host: str  # a name or an address; IPv6 without brackets
    user: str | None = None  # None: the SSH config's, else the local user's
    port: int | None = None  # None: the SSH config's, else 22
    name: str = ""  # how progress, the summary and the git remote call it
    manifest_host: str | None = None  # which of the manifest's hosts: it is (``host:``)

    @property
    def remote_suffix(self) -> str:
        """The name made safe for a git remote (``vps-<suffix>``)."""
        return _NAME.sub("-", self.name).strip("-.") or "host"


def parse_target(spec: str) -> Target:
    """``root@203.0.113.7``, ``admin@mx1.example.com:2222``, ``[2001:db8::7]:22``, ``vps``,
    each optionally after ``NAME=`` (the manifest's name for the host)."""
    named, eq, login = spec.partition("=")
    if eq and not _MANIFEST_NAME.fullmatch(named):
        raise UsageError(
            f"{spec!r}: {named!r} cannot name a host of the manifest",
            f"NAME= takes {NAME_RULE}, as under hosts: in gitops-mail.yaml",
        )
    target = _login(spec, login if eq else spec)
    return replace(target, name=named, manifest_host=named) if eq else target


def _login(spec: str, login: str) -> Target:
    user, at, rest = login.rpartition("@")
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


def assign_hosts(targets: list[Target], hosts: Mapping[str, HostEntry]) -> list[Target]:
    """Each target with its manifest host: as named (``NAME=``), or the one whose name,
    hostname or an address is the target's host. Without ``hosts:``, none may be named."""
    if not hosts:
        named = [t.spec for t in targets if t.manifest_host is not None]
        if named:
            raise UsageError(
                f"{named[0]!r} names a host, but gitops-mail.yaml has no hosts:",
                "drop NAME=, or add hosts: to gitops-mail.yaml (see the README's several servers)",
            )
        return targets
    listed = ", ".join(hosts)
    out = []
    for target in targets:
        name = target.manifest_host or _match(target.host, hosts)
        if name is None or name not in hosts:
            shown = target.manifest_host or target.host
            raise UsageError(
                f"{target.spec!r}: {shown} is none of the manifest's hosts ({listed})",
                f"say which one it is: NAME={target.spec.partition('=')[2] or target.spec}, "
                f"NAME one of {listed}",
            )
        out.append(replace(target, name=name, manifest_host=name))
    return out


def _match(host: str, hosts: Mapping[str, HostEntry]) -> str | None:
    wanted = host.lower().rstrip(".")
    for entry in hosts.values():
        names = {entry.name, entry.hostname.lower().rstrip("."), *entry.ipv4, *entry.ipv6}
        if wanted in names:
            return entry.name
    return None


def remote_names(targets: list[Target], base: str) -> dict[str, str]:
    """The conf repo's remote for each target: ``base`` alone, ``base-<name>`` for several."""
    if len(targets) == 1:
        return {targets[0].spec: base}
    return {t.spec: f"{base}-{t.remote_suffix}" for t in targets}
