"""SPF and DMARC as they will be published: the records ``dns/<domain>.zone`` gets.

SPF is the text ``zone`` publishes, its DNS lookups counted as RFC 7208
section 4.6.4 does (include, a, mx, ptr, exists, redirect: at most 10). Its
terms are ``mx``, ``a``, the qualifier of ``all`` (the schema's choices),
``ip4:``/``ip6:`` (the manifest rules parse them) and ``include:`` names; a
name with a macro (``%{d}``), which the rules cannot judge, is read by
pyspf's parser (``query.validate_mechanism``, the code its evaluator runs).
pyspf loads a DNS library (about 70 ms), so it is imported only then; its
evaluator, which asks DNS, is never called. The lookups that includes add are
``gitops-mail check``'s to count, live.

DMARC's tags and values are the schema's (each a closed choice) and its
report URIs the manifest rules'; what is left is how DMARC and DKIM work
together.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from gitops_mail.core import problems as P
from gitops_mail.core.dns.values import spf_value
from gitops_mail.core.domainname import to_ascii
from gitops_mail.core.manifest.model import DomainSettings, Manifest, Spf
from gitops_mail.core.snapshot import MANIFEST

MAX_LOOKUPS = 10  # RFC 7208 section 4.6.4
LOOKUP_TERMS = frozenset({"include", "a", "mx", "ptr", "exists", "redirect"})
EXAMPLE_IP = "192.0.2.1"  # what pyspf's parser needs to expand macros, never looked up


def check_senders(manifest: Manifest) -> list[P.Problem]:
    found: list[P.Problem] = []
    for _, settings in sorted(manifest.domains.items()):
        if settings.spf is not None:
            found += _spf(manifest, settings, settings.spf)
        found += _dmarc(manifest, settings)
    return found


def _line(manifest: Manifest, *path: str | int) -> int | None:
    return manifest.doc.line_of(path)


def _spf(manifest: Manifest, settings: DomainSettings, spf: Spf) -> Iterator[P.Problem]:
    line = _line(manifest, "domains", settings.name, "spf")
    record = spf_value(spf)
    terms = record.split()[1:]
    macros = [term for term in terms if "%" in term]
    reason = syntax_error(macros, to_ascii(settings.name) or settings.name) if macros else None
    if reason is not None:
        yield P.error(
            MANIFEST,
            line,
            "spf.syntax",
            f"the SPF record of {settings.name} would be invalid: {reason}",
            "fix the include: names (SPF macros are written like %{d})",
        )
    lookups = lookup_terms(terms)
    if len(lookups) > MAX_LOOKUPS:
        yield P.error(
            MANIFEST,
            line,
            "spf.too-many-lookups",
            f"the SPF record of {settings.name} makes {len(lookups)} DNS lookups "
            f"({', '.join(lookups)}); receivers stop at {MAX_LOOKUPS} and fail it (RFC 7208)",
            "list the server's addresses under ip4:/ip6: instead of mx/a, and drop includes",
        )
    if not _covers_server(manifest, spf):
        yield P.warning(
            MANIFEST,
            line,
            "spf.server-not-listed",
            f"the SPF record of {settings.name} does not list this server: mail it sends fails SPF",
            "keep `mx: true` (the default), or add the server's addresses under ip4:/ip6:",
        )


def lookup_terms(terms: list[str]) -> list[str]:
    """The terms that cost a DNS lookup, counted as RFC 7208 section 4.6.4 does."""
    return [term for term in terms if _name(term) in LOOKUP_TERMS]


def _name(term: str) -> str:
    """``include`` for ``~include:x``, ``redirect`` for ``redirect=x``."""
    bare = term.lstrip("+-~?")
    for separator in (":", "=", "/"):
        bare = bare.split(separator, 1)[0]
    return bare.lower()


def syntax_error(terms: list[str], domain: str) -> str | None:
    """Why pyspf's parser refuses one of the terms, or None."""
    import spf  # noqa: PLC0415 - pyspf loads a DNS library: only SPF macros pay for it

    query: Any = spf.query(i=EXAMPLE_IP, s=f"postmaster@{domain}", h=domain, strict=2)
    for term in terms:
        try:
            if "%{p" in term.lower():
                continue  # the p macro means a PTR lookup, even to expand it
            modifier = spf.RE_MODIFIER.split(term)[1:]
            if len(modifier) != 2:
                query.validate_mechanism(term)
            elif modifier[1]:
                query.expand_domain(modifier[1])
        except (spf.PermError, spf.AmbiguityWarning) as exc:
            return f"{exc.msg} in {term!r}"
    return None


def _covers_server(manifest: Manifest, spf: Spf) -> bool:
    if spf.mx or spf.a or not (manifest.ipv4 or manifest.ipv6):
        return True
    networks = [ipaddress.ip_network(n, strict=False) for n in (*spf.ip4, *spf.ip6)]
    addresses = [ipaddress.ip_address(a) for a in (*manifest.ipv4, *manifest.ipv6)]
    return all(any(a in n for n in networks if n.version == a.version) for a in addresses)


def _dmarc(manifest: Manifest, settings: DomainSettings) -> Iterator[P.Problem]:
    dmarc = settings.dmarc
    if dmarc is None or dmarc.p == "none" or settings.dkim is not None:
        return
    yield P.warning(
        MANIFEST,
        _line(manifest, "domains", settings.name, "dmarc", "p"),
        "dmarc.without-dkim",
        f"DMARC p={dmarc.p} without DKIM: mail forwarded on (mailing lists, forwarding to "
        "another mailbox) fails SPF, and with no DKIM signature receivers then "
        f"{'reject' if dmarc.p == 'reject' else 'quarantine'} it",
        "add `dkim: {selectors: [s2026]}` to the domain (the server makes the key)",
    )
