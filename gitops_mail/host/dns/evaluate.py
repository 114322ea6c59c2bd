"""SPF evaluated as receivers do, with pyspf, through the check's own resolver.

For each server address pyspf runs the domain's policy (includes, ``mx``,
``a``, redirects followed; RFC 7208's limits on DNS lookups and void lookups
enforced) and says pass, fail, softfail, ... For the lookup count, the policy
is evaluated once more for an address it cannot match (``NOWHERE``): a
receiver evaluating mail from anyone else walks every term.

pyspf asks DNS through one module-level function, ``spf.DNSLookup``; this
module replaces it, once, with one that uses the resolver the calling thread
set (``_local``), so parallel evaluations each use their own.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import dns.exception
import dns.resolver
import spf as pyspf

from gitops_mail.core.dns.answer import SpfEval
from gitops_mail.host.dns.query import Client

NOWHERE = "240.0.0.1"  # reserved (RFC 1112, class E): no policy authorises it
_local = threading.local()


def _lookup(name: str, qtype: str, strict: Any = True, timeout: float = 30) -> list[Any]:
    """pyspf's DNS function (``spf.DNSLookup``'s shape), through this thread's resolver."""
    resolver: dns.resolver.Resolver = _local.resolver
    try:
        answer = resolver.resolve(
            name, qtype, lifetime=min(timeout, resolver.lifetime), raise_on_no_answer=False
        )
    except dns.resolver.NXDOMAIN:
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        raise pyspf.TempError(f"DNS {exc}") from exc
    return [((name, qtype), _value(qtype, rdata)) for rdata in answer.rrset or ()]


def _value(qtype: str, rdata: Any) -> Any:
    """What pyspf expects per type (as its own dnspython lookup returns it)."""
    if qtype in ("A", "AAAA"):
        return rdata.address
    if qtype == "MX":
        return rdata.preference, rdata.exchange
    if qtype == "PTR":
        return rdata.target.to_text(True)
    if qtype in ("TXT", "SPF"):
        return rdata.strings
    return rdata.to_text()


pyspf.DNSLookup = _lookup


def evaluate(client: Client, domain: str, addresses: Sequence[str], hostname: str) -> SpfEval:
    """pyspf's result for mail from ``postmaster@domain`` sent by each address."""
    _local.resolver = client.resolver
    sender, helo = f"postmaster@{domain}", hostname or domain
    results = []
    for address in addresses:
        result, _, why = _query(address, sender, helo, client.timeout).check()
        results.append((address, str(result), "" if result == "pass" else str(why)))
    worst = _query(NOWHERE, sender, helo, client.timeout)
    result, _, why = worst.check()
    lookups = int(worst.lookups)
    if result == "permerror" and lookups > pyspf.MAX_LOOKUP:
        lax = _query(NOWHERE, sender, helo, client.timeout, strict=False)
        lax.check()
        lookups = int(lax.lookups)
    error = f"{result}: {why}" if result in ("permerror", "temperror") else ""
    return SpfEval(tuple(results), lookups, error)


def _query(address: str, sender: str, helo: str, timeout: float, *, strict: bool = True) -> Any:
    return pyspf.query(
        i=address, s=sender, h=helo, strict=strict, timeout=timeout, querytime=4 * timeout
    )
