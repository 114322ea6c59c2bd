"""One server's view of a repo with ``hosts:`` (pure).

The host settings say which server this is (``host: mx1``); ``view`` turns
the shared state into that server's: chasquid.conf with the host's
``hostname`` and ``overrides`` in place of the shared values (so render,
pre-flight, probes and plans all see this server's), the certificates it
installs (its own and the unclaimed ones), and ``manifest.host`` set, which
picks its DKIM selector. The manifest's ``hosts`` stay whole: the DNS zone
lists every server.

A repo without ``hosts:`` and settings without ``host:`` come back
unchanged. A mismatch is an ``InvalidConfig`` naming the settings file, the
manifest's hosts and the fix: nothing is applied for a server that does not
know which one it is.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from gitops_mail.core.formats.chasquid_conf import parse_config, render_config
from gitops_mail.core.manifest.hosts import HostEntry
from gitops_mail.core.manifest.model import MANIFEST_PATH, Manifest
from gitops_mail.core.manifest.roles import installed_certificates
from gitops_mail.core.snapshot import Entry
from gitops_mail.core.state import CONF_PATH, State
from gitops_mail.errors import InvalidConfig

HOST_KEY = "host"


def view(state: State, host: str | None, settings: str) -> State:
    """``state`` as server ``host`` renders it; ``settings`` names the host settings file."""
    manifest = state.manifest
    if manifest is None:
        return state  # no manifest, or one with errors: validation says so
    entry = _entry(manifest, host, settings)
    if entry is None:
        return state
    installed = installed_certificates(manifest, entry.name)
    certificates = tuple(c for c in manifest.certificates if c.name in installed)
    narrowed = manifest._replace(host=entry.name, certificates=certificates)
    if state.config is None:
        return replace(state, manifest=narrowed)  # chasquid.conf missing or invalid: reported
    data = host_conf(state, entry)
    config, problems = parse_config(data, CONF_PATH)
    files = dict(state.snapshot.files)
    old = files.get(CONF_PATH)
    files[CONF_PATH] = Entry(data, old.mode) if old is not None else Entry(data)
    snapshot = replace(state.snapshot, files=MappingProxyType(files))
    return replace(
        state,
        snapshot=snapshot,
        manifest=narrowed,
        config=config,
        problems=(*state.problems, *problems),
    )


def _entry(manifest: Manifest, host: str | None, settings: str) -> HostEntry | None:
    names = ", ".join(manifest.hosts) or "none"
    if not manifest.hosts and host is None:
        return None
    if not manifest.hosts:
        raise InvalidConfig(
            f"{settings} says {HOST_KEY}: {host}, but {MANIFEST_PATH} names no hosts",
            f"add hosts: {{{host}: {{hostname: ...}}}} to {MANIFEST_PATH}, "
            f"or remove {HOST_KEY}: from {settings}",
        )
    if host is None:
        raise InvalidConfig(
            f"{MANIFEST_PATH} lists hosts ({names}), "
            f"but {settings} does not say which one this server is",
            f"add '{HOST_KEY}: NAME' to {settings}, NAME one of {names} "
            "(gitops-mail deploy writes it)",
        )
    entry = manifest.hosts.get(host)
    if entry is None:
        raise InvalidConfig(
            f"{settings} says {HOST_KEY}: {host}, which is not among the hosts of "
            f"{MANIFEST_PATH} ({names})",
            f"set {HOST_KEY}: to one of {names} in {settings}, or add {host} under hosts:",
        )
    return entry


def host_conf(state: State, entry: HostEntry) -> bytes:
    """chasquid.conf for ``entry``: the shared file's settings with the host's over them."""
    assert state.config is not None  # noqa: S101 - the caller checks
    values: dict[str, object] = {"hostname": entry.hostname, **entry.overrides}
    config = replace(state.config, **values, explicit=state.config.explicit | set(values))  # type: ignore[arg-type]
    head = (
        f"# chasquid.conf of host {entry.name}: {CONF_PATH} with hosts.{entry.name} "
        f"of {MANIFEST_PATH} over it.\n"
    )
    return head.encode() + render_config(config)
