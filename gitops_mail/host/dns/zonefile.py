"""Zone text as records: what a ``dns/<domain>.zone`` file says, read with dnspython.

``gitops-mail check`` reads the zones ``core.dns.zone`` renders (and the one
the repo holds) back into ``(name, type) -> values`` with the same library
that reads live answers, so both sides are compared in one form.
"""

from __future__ import annotations

import dns.exception
import dns.rdata
import dns.rdatatype
import dns.zone

from gitops_mail.core.dns.want import Records
from gitops_mail.errors import InvalidConfig


def records(text: bytes, origin: str, path: str) -> Records:
    """Every record of ``text`` (a zone fragment of ``origin``) by absolute name and type."""
    try:
        zone = dns.zone.from_text(
            text.decode("ascii", "replace"),
            origin=origin.rstrip(".") + ".",
            relativize=False,
            check_origin=False,
        )
    except dns.exception.DNSException as exc:
        raise InvalidConfig(
            f"{path}: cannot read the zone: {exc}",
            "it is generated: restore it from git, or let the daemon write it again",
        ) from exc
    found: dict[tuple[str, str], list[str]] = {}
    for name, _ttl, rdata in zone.iterate_rdatas():
        key = (name.to_text().lower(), dns.rdatatype.to_text(rdata.rdtype))
        found.setdefault(key, []).append(rdata_text(rdata))
    return {key: tuple(values) for key, values in found.items()}


def rdata_text(rdata: dns.rdata.Rdata) -> str:
    """One record's data as check compares it; a TXT record's strings joined."""
    strings = getattr(rdata, "strings", None)
    if strings is not None:
        return b"".join(strings).decode("utf-8", "replace")
    return str(rdata.to_text())
