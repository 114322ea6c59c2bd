"""The steps of a deploy, as data, and how what a host has differs from what a step wants.

A step names one piece of wanted state (packages installed, a file with this
content, owner and mode, a service enabled and running). ``probe.py`` asks
the host what it has for every step in one round trip; ``differences`` says
what differs, in words, and an empty answer means the step has nothing to do.
That is how a second deploy changes nothing and says so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Content:
    """A file's bytes (``data``), or a local file to upload (``source``), and its digest."""

    sha256: str
    size: int
    data: bytes | None = None
    source: str | None = None

    @classmethod
    def of(cls, data: bytes) -> Content:
        return cls(hashlib.sha256(data).hexdigest(), len(data), data=data)


@dataclass(frozen=True)
class Packages:
    name: str
    packages: tuple[str, ...]


@dataclass(frozen=True)
class Account:
    name: str
    user: str
    home: str
    shell: str


@dataclass(frozen=True)
class Directory:
    name: str
    path: str
    owner: str = "root"
    group: str = "root"
    mode: int = 0o755


@dataclass(frozen=True)
class File:
    name: str
    path: str
    content: Content
    owner: str = "root"
    group: str = "root"
    mode: int = 0o644
    keep_existing: bool = False  # written only where missing (the host's own file once there)


@dataclass(frozen=True)
class Lines:
    """Lines a file must contain (others stay): keys in an ``authorized_keys``."""

    name: str
    path: str
    lines: tuple[str, ...]
    owner: str
    group: str
    mode: int = 0o600


@dataclass(frozen=True)
class Link:
    name: str
    path: str
    target: str


@dataclass(frozen=True)
class Command:
    """``run`` when ``check`` fails (exit non-zero), or when a step in ``after`` changed."""

    name: str
    run: str  # a shell command, run as root
    check: str  # a shell command: exit 0 means there is nothing to do
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class Service:
    """Units enabled and (``start``) running; restarted when a step in ``restart_after`` changed."""

    name: str
    units: tuple[str, ...]
    start: bool = True
    restart_after: tuple[str, ...] = ()


Step = Packages | Account | Directory | File | Lines | Link | Command | Service

MISSING = "missing"


def differences(step: Step, found: str) -> list[str]:  # noqa: PLR0911 - one answer per kind
    """What ``found`` (the probe's answer for ``step``) lacks; [] when nothing is to do."""
    if isinstance(step, Packages):
        words = found.split()
        return [
            f"{p} not installed" for p, w in zip(step.packages, words, strict=False) if w != "ok"
        ]
    if isinstance(step, Account):
        return [] if found == "ok" else [f"no user {step.user}"]
    if isinstance(step, Command):
        return [] if found == "ok" else ["needed"]
    if isinstance(step, Lines):
        return [] if found == "0" else [f"{found} line(s) missing"]
    if isinstance(step, Link):
        return (
            [] if found == step.target else ["missing" if found == MISSING else "points elsewhere"]
        )
    if isinstance(step, Service):
        return _service(step, found)
    return _file(step, found)


def _file(step: Directory | File, found: str) -> list[str]:
    if found == MISSING:
        return [MISSING]
    kind, owner, group, mode, digest = (found.split("|") + [""] * 5)[:5]
    wanted_kind = "directory" if isinstance(step, Directory) else "regular"
    if not kind.startswith(wanted_kind):
        return [f"is a {kind}, not a {wanted_kind}"]
    if isinstance(step, File) and step.keep_existing:
        return []
    out = []
    if isinstance(step, File) and digest != step.content.sha256:
        out.append("content")
    if (owner, group) != (step.owner, step.group):
        out.append(f"owner {owner}:{group}, wanted {step.owner}:{step.group}")
    if mode != f"{step.mode:o}":
        out.append(f"mode {mode}, wanted {step.mode:o}")
    return out


def _service(step: Service, found: str) -> list[str]:
    enabled, _, active = found.partition("|")
    out = [] if enabled.split() == ["enabled"] * len(step.units) else ["not enabled"]
    if step.start and active.split() != ["active"] * len(step.units):
        out.append("not running")
    return out


def kept_note(step: Step, found: str) -> str | None:
    """For a file written only where missing: a note when the host's copy differs."""
    if not isinstance(step, File) or not step.keep_existing or found == MISSING:
        return None
    if found.rsplit("|", maxsplit=1)[-1] == step.content.sha256:
        return None
    return "kept the host's own version (remove it to get the one deploy writes)"
