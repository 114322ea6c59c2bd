"""One judge per record ``gitops-mail check`` looks at: MX, A/AAAA, PTR, SPF, DKIM, DMARC,
MTA-STS and TLS-RPT (pure). Each returns an ``Expect``: the question and how to judge
its answer, in words that say what was found and what was expected."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping

from gitops_mail.core.dns import findings as f
from gitops_mail.core.dns.answer import Answer, Expect, SpfEval, Verdict
from gitops_mail.core.dns.want import (
    Desired,
    DomainWant,
    Question,
    Server,
    reverse_name,
    starts_with_tag,
)

MAX_LOOKUPS = 10  # RFC 7208 section 4.6.4


# --- MX, A/AAAA, PTR ------------------------------------------------------------------


def mx(want: Desired, domain: DomainWant) -> Expect:
    hosts = [server.hostname.lower() for server in want.servers]

    def judge(answer: Answer) -> Verdict:
        targets = [_mx_target(v) for v in answer.values]
        shown = ", ".join(answer.values) or "no MX record"
        if all(host in targets for host in hosts):
            named = ", ".join(hosts)
            return f.OK, f"points at {named}" + (f" ({shown})" if len(targets) > 1 else ""), ""
        hint = f"publish the MX record of dns/{domain.name}.zone"
        missing = ", ".join(f"{h}." for h in hosts if h not in targets)
        if len(hosts) == 1:
            return f.ERROR, f"{shown}; expected 10 {missing}", hint
        return f.ERROR, f"{shown}; expected also {missing}", hint

    return Expect("mx", domain.name, (domain.fqdn, "MX"), judge)


def _mx_target(value: str) -> str:
    words = value.split()
    return words[-1].rstrip(".").lower() if words else ""


def address(want: Server, version: int) -> Expect:
    rtype = "A" if version == 4 else "AAAA"
    expected = sorted(want.family(version), key=ipaddress.ip_address)

    def judge(answer: Answer) -> Verdict:
        got = sorted(
            {str(ipaddress.ip_address(v)) for v in answer.values}, key=ipaddress.ip_address
        )
        if got == expected:
            return f.OK, ", ".join(got) or f"none (the manifest lists no IPv{version})", ""
        shown = ", ".join(got) or f"no {rtype} record"
        wanted = ", ".join(expected) or "none (the manifest lists no such address)"
        hint = "publish the server's addresses as the manifest's server: lists them"
        return f.ERROR, f"{shown}; expected {wanted}", hint

    return Expect(rtype.lower(), want.hostname, (want.hostname + ".", rtype), judge)


def ptr(want: Server, address: str, resolved: Mapping[Question, Answer]) -> Expect:
    host = want.hostname.lower()
    version = ipaddress.ip_address(address).version
    forward = resolved.get((want.hostname + ".", "A" if version == 4 else "AAAA"), Answer())
    hint = f"set the reverse DNS of {address} to {host} at the hosting provider"

    def names(answer: Answer) -> list[str]:
        return [v.rstrip(".").lower() for v in answer.values]

    def judge(answer: Answer) -> Verdict:
        if host not in names(answer):
            shown = ", ".join(answer.values) or "no PTR record"
            return f.ERROR, f"{shown}; expected {host}.", hint
        back = {ipaddress.ip_address(v) for v in forward.values}
        if ipaddress.ip_address(address) not in back:
            return f.ERROR, f"{host}. does not resolve back to {address}", hint
        return f.OK, f"{host}, which resolves back", ""

    return Expect("ptr", address, (reverse_name(address), "PTR"), judge, lambda a: host in names(a))


# --- SPF ------------------------------------------------------------------------------


def spf_records(answer: Answer) -> list[str]:
    return [v for v in answer.values if starts_with_tag(v, "v=spf1")]


def spf(domain: DomainWant, evaluated: SpfEval | None) -> Expect:
    hint = f"publish the SPF record of dns/{domain.name}.zone"

    def judge(answer: Answer) -> Verdict:
        records = spf_records(answer)
        if len(records) != 1:
            return f.ERROR, _spf_count(domain, records), hint
        problems = _spf_problems(evaluated)
        if problems and records[0] == domain.spf:
            return f.ERROR, "; ".join(problems), _REFERRED
        if problems:
            return f.ERROR, "; ".join(problems), hint
        assert evaluated is not None  # noqa: S101 - _spf_problems says so otherwise
        passes = f"passes for {', '.join(a for a, _, _ in evaluated.results) or 'no address'}"
        passes += f" ({evaluated.lookups} of {MAX_LOOKUPS} lookups)"
        if domain.spf is None:
            return f.OK, f"{passes}; the manifest sets no SPF", ""
        if records[0] != domain.spf:
            differs = f'{passes}, but "{records[0]}" differs from the zone\'s "{domain.spf}"'
            return f.WARNING, differs, hint
        return f.OK, passes, ""

    def again(answer: Answer) -> bool:
        return domain.spf is not None and spf_records(answer) == [domain.spf]

    return Expect("spf", domain.name, (domain.fqdn, "TXT"), judge, again)


_REFERRED = (
    "the record is the zone's: the records its terms name (mx, a, include:) decide; fix those"
)


def _spf_count(domain: DomainWant, records: list[str]) -> str:
    if records:
        return f"{len(records)} SPF records: receivers fail them all (permerror, RFC 7208 3.2)"
    return "no SPF record" + (f'; expected "{domain.spf}"' if domain.spf else "")


def _spf_problems(evaluated: SpfEval | None) -> list[str]:
    if evaluated is None:
        return ["not evaluated"]
    problems = [
        f"{result} for {address}" + (f" ({why})" if result.endswith("error") else "")
        for address, result, why in evaluated.results
        if result != "pass"
    ]
    if evaluated.lookups > MAX_LOOKUPS:
        problems.append(
            f"needs {evaluated.lookups} DNS lookups; receivers give up after {MAX_LOOKUPS}"
        )
    elif evaluated.error:
        problems.append(evaluated.error)
    return problems


# --- DKIM, DMARC, MTA-STS, TLS-RPT ----------------------------------------------------


def tags(value: str) -> dict[str, str]:
    """A ``tag=value; ...`` list (DKIM, DMARC, MTA-STS, TLS-RPT) as a dict; names lower case."""
    found: dict[str, str] = {}
    for part in value.split(";"):
        name, sep, text = part.partition("=")
        if sep:
            found.setdefault(name.strip().lower(), text.strip())
    return found


def key_id(p: str) -> str:
    """A short name for a public key: the first 12 hex digits of its base64 text's SHA-256."""
    return "sha256:" + hashlib.sha256("".join(p.split()).encode()).hexdigest()[:12]


def dkim(domain: DomainWant, selector: str, local: str | None) -> Expect:
    name = f"{selector}._domainkey.{domain.fqdn}"
    subject = name.rstrip(".")
    hint = f"publish the DKIM record of selector {selector} from dns/{domain.name}.zone"

    def judge(answer: Answer) -> Verdict:
        keys = ["".join(tags(v).get("p", "").split()) for v in answer.values if "p" in tags(v)]
        if local is None:
            message = f"no local key for selector {selector} yet: nothing to compare with"
            return f.WARNING, message, "apply on the server makes the key; then publish it"
        if len(keys) != 1:
            return f.ERROR, ("not published" if not keys else f"{len(keys)} DKIM records"), hint
        if not keys[0]:
            return f.ERROR, "published with an empty p= (revoked)", hint
        if keys[0] != "".join(local.split()):
            message = f"published key {key_id(keys[0])} is not the local key {key_id(local)}"
            return f.ERROR, message, hint
        return f.OK, f"matches the local key {key_id(local)}", ""

    return Expect("dkim", subject, (name, "TXT"), judge)


def dmarc(domain: DomainWant) -> Expect:
    hint = f"publish the DMARC record of dns/{domain.name}.zone"

    def judge(answer: Answer) -> Verdict:
        records = [v for v in answer.values if starts_with_tag(v, "v=DMARC1")]
        if len(records) > 1:
            return f.ERROR, f"{len(records)} DMARC records: receivers ignore them all", hint
        if not records:
            if domain.dmarc is None:
                return f.WARNING, "no DMARC record", "add dmarc: under this domain in the manifest"
            return f.ERROR, f'no DMARC record; expected "{domain.dmarc}"', hint
        published = tags(records[0])
        if published.get("p") not in ("none", "quarantine", "reject"):
            return (
                f.ERROR,
                f'"{records[0]}" is not valid: p= must be none, quarantine or reject',
                hint,
            )
        if domain.dmarc is None:
            return f.OK, f"p={published['p']} (the manifest sets no DMARC)", ""
        return _compare_tags(published, tags(domain.dmarc), f"p={published['p']}", hint)

    return Expect("dmarc", domain.name, (f"_dmarc.{domain.fqdn}", "TXT"), judge)


def txt(check: str, domain: DomainWant, prefix: str, version: str, expected: str) -> Expect:
    hint = f"publish the {check.upper()} record of dns/{domain.name}.zone"

    def judge(answer: Answer) -> Verdict:
        records = [v for v in answer.values if starts_with_tag(v, version)]
        if len(records) != 1:
            found = "no record" if not records else f"{len(records)} records"
            return f.ERROR, f'{found}; expected "{expected}"', hint
        return _compare_tags(tags(records[0]), tags(expected), records[0], hint)

    return Expect(check, domain.name, (f"{prefix}{domain.fqdn}", "TXT"), judge)


def _compare_tags(
    published: dict[str, str], expected: dict[str, str], ok: str, hint: str
) -> Verdict:
    diffs = []
    for name in sorted(set(published) | set(expected), key=lambda n: (n != "v", n)):
        have, want = published.get(name), expected.get(name)
        if have == want:
            continue
        if have is None:
            diffs.append(f"{name}= is missing (expected {name}={want})")
        elif want is None:
            diffs.append(f"{name}={have} is not in the manifest")
        else:
            diffs.append(f"{name}={have}, expected {name}={want}")
    return (f.ERROR, "; ".join(diffs), hint) if diffs else (f.OK, ok, "")
