"""Live DNS answers against what DNS should say: findings (pure).

``expectations`` makes one ``Expect`` per record to check, each with the
question to ask and a judge of the answer. The caller asks a resolver,
judges, and for every error asks the zone's authoritative servers too:
``settle`` then tells "wrong" (they say the same) from "not propagated yet"
(they already say what is expected; the resolver still holds an older answer
for up to its TTL). SPF is judged on pyspf's evaluation for each server
address (``SpfEval``, made by the caller through the same resolver).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from gitops_mail.core.dns import findings as f
from gitops_mail.core.dns import records as r
from gitops_mail.core.dns.answer import Answer, Expect, SpfEval
from gitops_mail.core.dns.want import Desired, Question


def verdict(expect: Expect, answer: Answer) -> f.Finding:
    if answer.error:
        status, message, hint = f.ERROR, f"no answer: {answer.error}", "check the resolver"
    else:
        status, message, hint = expect.judge(answer)
    name, ttl = expect.question[0], answer.ttl
    return f.Finding(expect.check, expect.subject, status, message, name, ttl, hint)


def settle(
    expect: Expect, finding: f.Finding, resolved: Answer, auth: Sequence[tuple[str, Answer]]
) -> f.Finding:
    """``finding`` (an error on the ``resolved`` answer) once the authoritative servers answered.

    Not propagated yet: an authoritative server answers otherwise than the
    resolver, and rightly. An answer the same as the resolver's is no newer one.
    """
    right = expect.again or (lambda a: expect.judge(a)[0] == f.OK)
    answered = [(server, a) for server, a in auth if not a.error]
    if not answered:
        why = "; ".join(f"{s}: {a.error}" for s, a in auth) or "none found"
        return replace(finding, message=f"{finding.message} (authoritative servers: {why})")
    same = sorted(resolved.values)
    good = [server for server, a in answered if sorted(a.values) != same and right(a)]
    if not good:
        return replace(finding, message=f"{finding.message} (the authoritative servers agree)")
    who = ", ".join(good)
    part = "" if len(good) == len(answered) else f"{len(good)} of {len(answered)} "
    message = (
        f"not propagated yet: {part}authoritative servers ({who}) already answer as expected;"
        f" the resolver still has: {finding.message}"
    )
    hint = "wait for the resolver's cached answer to expire (TTL seconds)"
    return replace(finding, status=f.WARNING, message=message, hint=hint)


def expectations(
    want: Desired, resolved: Mapping[Question, Answer], spf: Mapping[str, SpfEval]
) -> list[Expect]:
    """Everything to check, in report order."""
    found: list[Expect] = []
    for server in want.servers:
        if server.addresses:
            found += [r.address(server, 4), r.address(server, 6)]
            found += [r.ptr(server, a, resolved) for a in server.addresses]
    for domain in want.domains:
        found += [r.mx(want, domain)] if want.servers else []
        found.append(r.spf(domain, spf.get(domain.name)))
        found += [r.dkim(domain, selector, key) for selector, key in domain.dkim]
        found.append(r.dmarc(domain))
        if domain.mta_sts is not None:
            found.append(r.txt("mta-sts", domain, "_mta-sts.", "v=STSv1", domain.mta_sts))
        if domain.tls_rpt is not None:
            found.append(r.txt("tls-rpt", domain, "_smtp._tls.", "v=TLSRPTv1", domain.tls_rpt))
    return found


def unchecked(want: Desired) -> list[f.Finding]:
    """What cannot be checked for want of a setting."""
    out = []
    if not want.hostname:
        message = "chasquid.conf sets no hostname: MX, A, AAAA and PTR are not checked"
        hint = "set hostname in chasquid/chasquid.conf"
        out.append(f.Finding("mx", "(hostname)", f.ERROR, message, hint=hint))
    elif not want.addresses:
        message = "the manifest lists no server addresses: A, AAAA and PTR are not checked"
        hint = "add server.ipv4 and server.ipv6 to gitops-mail.yaml"
        out.append(f.Finding("a", want.hostname, f.WARNING, message, hint=hint))
    return out
