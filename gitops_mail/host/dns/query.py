"""Ask live DNS: a resolver (this host's, or ``--resolver IP``) and a zone's own servers.

``Client.ask_all`` puts every question to the resolver at once (a thread per
question, up to ``WORKERS``); ``Client.authoritative`` finds the zone that
holds a name (SOA), its NS names and their addresses through the resolver,
then asks each of those servers directly, so a record that is right at the
source but not yet in the resolver's cache can be told from a wrong one.
Failures are data (``Answer.error``), never exceptions: one missing answer
must not hide the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from gitops_mail.core.dns.answer import Answer
from gitops_mail.core.dns.want import Question
from gitops_mail.errors import UsageError
from gitops_mail.host.dns.zonefile import rdata_text

TIMEOUT = 3.0  # seconds for one question, retries included
WORKERS = 16


class Client:
    def __init__(self, resolver: str | None = None, *, timeout: float = TIMEOUT) -> None:
        try:
            self.resolver = dns.resolver.Resolver(configure=resolver is None)
        except dns.resolver.NoResolverConfiguration as exc:
            raise UsageError(
                f"this host has no DNS resolver configured ({exc})",
                "name one with --resolver IP",
            ) from exc
        if resolver is not None:
            self.resolver.nameservers = [resolver]
        self.resolver.lifetime = self.timeout = timeout
        self.resolver.cache = None  # every answer fresh, its TTL the resolver's own
        self._servers: dict[str, list[tuple[str, str]]] = {}

    @property
    def name(self) -> str:
        return ", ".join(str(ns) for ns in self.resolver.nameservers)

    def ask(self, question: Question) -> Answer:
        name, rtype = question
        try:
            answer = self.resolver.resolve(name, rtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return Answer()
        except dns.exception.Timeout:
            return Answer(error=f"{self.name} did not answer within {self.timeout:g} s")
        except dns.resolver.NoNameservers as exc:
            return Answer(error=_failure(exc))
        except dns.exception.DNSException as exc:
            return Answer(error=str(exc))
        rrset = answer.rrset
        if rrset is None:
            return Answer()
        return Answer(tuple(rdata_text(r) for r in rrset), rrset.ttl)

    def ask_all(self, questions: Iterable[Question]) -> dict[Question, Answer]:
        asked = list(dict.fromkeys(questions))
        if not asked:
            return {}
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(asked))) as pool:
            return dict(zip(asked, pool.map(self.ask, asked), strict=True))

    def authoritative(self, question: Question) -> list[tuple[str, Answer]]:
        """Each authoritative server of the zone holding the name, and its answer."""
        try:
            servers = self._zone_servers(question[0])
        except dns.exception.DNSException as exc:
            return [("(the zone's servers)", Answer(error=f"cannot find them: {exc}"))]
        return [(label, self._direct(address, question)) for label, address in servers]

    def _zone_servers(self, name: str) -> list[tuple[str, str]]:
        zone = dns.resolver.zone_for_name(name, resolver=self.resolver, lifetime=self.timeout)
        key = zone.to_text()
        if key not in self._servers:
            ns = self.resolver.resolve(zone, "NS", raise_on_no_answer=False, search=False)
            names = sorted(rdata_text(r) for r in ns.rrset or ())
            found = []
            for ns_name in names:
                for rtype in ("A", "AAAA"):
                    for address in self.ask((ns_name, rtype)).values:
                        found.append((f"{ns_name.rstrip('.')} {address}", address))
            self._servers[key] = found
        return self._servers[key]

    def _direct(self, address: str, question: Question) -> Answer:
        name, rtype = question
        query = dns.message.make_query(name, rtype)
        query.flags &= ~dns.flags.RD
        try:
            response, _ = dns.query.udp_with_fallback(query, address, timeout=self.timeout)
        except (dns.exception.DNSException, OSError) as exc:
            return Answer(error=str(exc) or type(exc).__name__)
        code = response.rcode()
        if code == dns.rcode.NXDOMAIN:
            return Answer()
        if code != dns.rcode.NOERROR or not response.flags & dns.flags.AA:
            return Answer(error=f"not authoritative ({dns.rcode.to_text(code)})")
        try:
            rrset = response.find_rrset(
                response.answer,
                dns.name.from_text(name),
                dns.rdataclass.IN,
                dns.rdatatype.from_text(rtype),
            )
        except KeyError:
            return Answer()
        return Answer(tuple(rdata_text(r) for r in rrset), rrset.ttl)


def _failure(exc: dns.resolver.NoNameservers) -> str:
    """The resolver's own words (SERVFAIL, REFUSED) without dnspython's long list."""
    errors = exc.kwargs.get("errors") or []
    said = sorted({str(e[3]) for e in errors if len(e) > 3 and e[3]})
    return "the resolver failed: " + (", ".join(said) or "no nameserver answered")
