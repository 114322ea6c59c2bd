"""``gitops-mail check`` on this host: live DNS and the served certificates against a state.

``desired_from`` says what DNS should hold for a revision (its rendered zones,
each DKIM selector's local key); ``run`` asks DNS and the server, judges
(``core.dns.check``, ``probe.served``) and returns the findings in report order.
The CLI and the daemon's periodic check both call these.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gitops_mail.core.dns import check, records, want
from gitops_mail.core.dns.answer import Answer, SpfEval
from gitops_mail.core.dns.findings import ERROR, Finding
from gitops_mail.core.dns.zone import ZONE_DIR, ZONE_SUFFIX, render_zones, zone_path
from gitops_mail.core.snapshot import Snapshot
from gitops_mail.core.state import State
from gitops_mail.host.dkim.store import public_keys
from gitops_mail.host.dns import zonefile
from gitops_mail.host.dns.evaluate import evaluate
from gitops_mail.host.dns.query import Client
from gitops_mail.host.probe import served
from gitops_mail.host.probe.client import served_certificates
from gitops_mail.host.probe.spec import ProbeSpec


def desired_from(state: State, state_dir: Path | None = None) -> want.Desired:
    """What DNS should say for ``state``: its zones as rendered, the DKIM keys it publishes.

    On the server (``state_dir`` given) the keys are the key store's, the ones
    chasquid signs with; in a checkout, those of the zone the repo holds.
    """
    zones = {
        _origin(path): zonefile.records(data, _origin(path), path)
        for path, data in render_zones(state).items()
    }
    stored = public_keys(state_dir, state.manifest) if state_dir is not None else {}
    keys: dict[str, want.DkimKeys] = {}
    if state.manifest is not None:
        for settings in state.manifest.domains.values():
            if settings.dkim is not None:
                path = zone_path(settings.name)
                found = local_dkim_keys(state.snapshot, path, settings.dkim.selectors)
                for selector in found:
                    key = stored.get((settings.name, selector))
                    found[selector] = key.p if key is not None else found[selector]
                keys[_origin(path)] = found
    return want.desired(state, zones, keys)


def local_dkim_keys(
    snapshot: Snapshot, path: str, selectors: Sequence[str]
) -> dict[str, str | None]:
    """Each selector's public key (``p=``) as the zone the repo holds publishes it
    (``dns/<domain>.zone``, committed back by the daemon); None: no key yet."""
    data = snapshot.data(path)
    origin = _origin(path)
    committed = zonefile.records(data, origin, path) if data is not None else {}
    keys: dict[str, str | None] = {}
    for selector in selectors:
        values = committed.get((f"{selector}._domainkey.{origin}.".lower(), "TXT"), ())
        found = [records.tags(v)["p"] for v in values if "p" in records.tags(v)]
        keys[selector] = "".join(found[0].split()) if found else None
    return keys


def _origin(path: str) -> str:
    return path.removeprefix(ZONE_DIR + "/").removesuffix(ZONE_SUFFIX)


def run(
    desired: want.Desired, *, resolver: str | None = None, spec: ProbeSpec | None = None
) -> list[Finding]:
    """Every finding: DNS (through ``resolver``, or this host's), then each served certificate."""
    client = Client(resolver)
    with ThreadPoolExecutor(max_workers=1) as pool:
        tls = pool.submit(served_certificates, spec) if spec is not None else None
        found = _dns(client, desired)
        if tls is not None and spec is not None:
            found += served.findings(tls.result(), spec.hostname, spec.fingerprints)
    return found


def _dns(client: Client, desired: want.Desired) -> list[Finding]:
    resolved = client.ask_all(want.questions(desired))
    evaluations = _spf(client, desired, resolved)
    found = check.unchecked(desired)
    for expect in check.expectations(desired, resolved, evaluations):
        answer = resolved[expect.question]
        finding = check.verdict(expect, answer)
        if finding.status == ERROR and not answer.error:
            auth = client.authoritative(expect.question)
            finding = check.settle(expect, finding, answer, auth)
        found.append(finding)
    return found


def _spf(
    client: Client, desired: want.Desired, resolved: dict[want.Question, Answer]
) -> dict[str, SpfEval]:
    """pyspf's evaluation of each domain that publishes exactly one SPF record."""
    domains = [
        d.name
        for d in desired.domains
        if len(records.spf_records(resolved.get((d.fqdn, "TXT"), Answer()))) == 1
    ]
    if not domains:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(domains))) as pool:
        results = pool.map(
            lambda d: evaluate(client, d, desired.addresses, desired.hostname), domains
        )
        return dict(zip(domains, results, strict=True))
