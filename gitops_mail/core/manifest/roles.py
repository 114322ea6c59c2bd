"""What one server of the manifest's ``hosts:`` does (pure): the DKIM selectors it signs
with, the certificates it installs. A manifest without ``hosts:`` is one server doing
all of it."""

from __future__ import annotations

from gitops_mail.core.manifest.hosts import HostEntry
from gitops_mail.core.manifest.model import DomainSettings, Manifest


def own(manifest: Manifest) -> HostEntry | None:
    """The entry of the host this manifest was viewed for (``hostview``), if any."""
    return manifest.hosts.get(manifest.host) if manifest.host is not None else None


def signing_selectors(manifest: Manifest, settings: DomainSettings) -> tuple[str, ...]:
    """The selectors this server keeps keys for and signs with, for one domain.

    Every selector of the domain, unless the hosts each have their own
    ``dkim_selector``: then only this host's.
    """
    if settings.dkim is None:
        return ()
    entry = own(manifest)
    if entry is None or entry.dkim_selector is None:
        return settings.dkim.selectors
    mine = entry.dkim_selector.lower()
    return tuple(s for s in settings.dkim.selectors if s.lower() == mine)


def installed_certificates(manifest: Manifest, host: str | None) -> frozenset[str]:
    """Names of the certificate entries ``host`` installs: its own and the unclaimed ones."""
    claimed = {e.certificate: e.name for e in manifest.hosts.values() if e.certificate}
    return frozenset(c.name for c in manifest.certificates if claimed.get(c.name, host) == host)
