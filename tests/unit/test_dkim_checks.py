"""validate's DKIM, SPF and DMARC checks, and the record changes a plan shows."""

from __future__ import annotations

import base64

from support.repo import snapshot

from gitops_mail.core.checks.senders import syntax_error
from gitops_mail.core.checks.validate import validate
from gitops_mail.core.dns.dkim import PublicKey
from gitops_mail.core.dns.zone import render_zones
from gitops_mail.core.plan.make import make_plan
from gitops_mail.core.problems import Problem, Severity
from gitops_mail.core.render import HOOK, hook_source
from gitops_mail.core.state import State, load_state

RSA = PublicKey("rsa", base64.b64encode(bytes(range(256)) + bytes(38)).decode())
ED = PublicKey("ed25519", base64.b64encode(bytes(32)).decode())
ZONE = "dns/example.com.zone"


def manifest(domain: str) -> str:
    return (
        "version: 1\n"
        "server: {ipv4: [198.51.100.7]}\n"
        "certificates:\n  - name: mail.example.com\n    acme_sh: /root/.acme.sh/mail.example.com\n"
        "domains:\n"
        f"  example.com: {domain}\n"
        "accept:\n  - {code: manifest.ip-placeholder, at: gitops-mail.yaml, why: a test}\n"
    )


def state(domain: str, zone_of: str | None = None, **files: str | bytes) -> State:
    """A revision whose committed zone is the one ``zone_of``'s manifest renders with keys."""
    base: dict[str, str | bytes] = {
        "gitops-mail.yaml": manifest(domain),
        "chasquid/chasquid.conf": 'hostname: "mail.example.com"\n',
        "chasquid/domains/example.com/aliases": "postmaster: owner@fastmail.com\n",
        **{path.replace("__", "/"): data for path, data in files.items()},
    }
    if zone_of is not None:
        published = load_state(snapshot(base={**base, "gitops-mail.yaml": manifest(zone_of)}))
        keys = {("example.com", "old"): RSA, ("example.com", "mid"): RSA, ("example.com", "e"): ED}
        base[ZONE] = render_zones(published, keys)[ZONE]
    return load_state(snapshot(base=base))


def problems(domain: str, zone_of: str | None = None, **files: str | bytes) -> list[Problem]:
    found = validate(state(domain, zone_of, **files), policy=None)
    return [p for p in found if p.code != "aliases.loop" and p.severity is not Severity.ACCEPTED]


def codes(found: list[Problem]) -> list[tuple[str, int | None, Severity]]:
    return [(p.code, p.line, p.severity) for p in found]


def test_a_hand_made_selector_file_that_disagrees_with_the_manifest_is_an_error() -> None:
    path = "chasquid/domains/example.com/dkim_selector"
    [error] = problems("{dkim: {selectors: [s2026]}}", **{path.replace("/", "__"): "s2025\n"})
    assert error == Problem(
        path,
        1,
        "dkim.selector-mismatch",
        "says 's2025', but the manifest's dkim.selectors for example.com are s2026: mail is "
        "signed with the manifest's selectors only, and DNS publishes those",
        "remove this file; list the selectors under domains.<domain>.dkim in gitops-mail.yaml",
    )
    [warning] = problems("{dkim: {selectors: [s2026]}}", **{path.replace("/", "__"): "s2026\n"})
    assert (warning.code, warning.severity) == ("dkim.selector-file", Severity.WARNING)


def test_rotation_publishes_the_new_selector_before_the_old_one_leaves() -> None:
    old = "{dkim: {selectors: [old]}}"
    assert problems("{dkim: {selectors: [new, old]}}", zone_of=old) == []
    [last] = problems("{dkim: {selectors: [new]}}", zone_of=old)
    assert last == Problem(
        "gitops-mail.yaml",
        7,
        "dkim.last-selector-removed",
        "example.com: old is the last selector dns/example.com.zone publishes, and the manifest "
        "no longer has it: mail would go out signed only with keys DNS does not publish yet, "
        "and fail DKIM",
        "rotate in two steps: `selectors: [new, old]` until the daemon has committed the new "
        "record and it is in DNS, then drop old; to stop signing on purpose, delete the DKIM "
        "records from dns/example.com.zone in the same commit",
    )
    [gone] = problems("{spf: {}}", zone_of=old)
    assert "mail would go out unsigned, and fail DKIM" in gone.message
    [step_two] = problems("{dkim: {selectors: [mid]}}", zone_of="{dkim: {selectors: [mid, old]}}")
    assert step_two == Problem(
        "gitops-mail.yaml",
        7,
        "dkim.selector-removed",
        "example.com: selector old no longer signs, but dns/example.com.zone still publishes "
        "it; the daemon drops it from dns/example.com.zone",
        "keep old._domainkey.example.com in DNS a few more days (mail already sent is checked "
        "against it), then delete it",
        Severity.WARNING,
    )


def test_ed25519_alone_is_a_warning_and_a_published_key_keeps_its_type() -> None:
    [alone] = problems("{dkim: {selectors: [e], algorithm: ed25519}}")
    assert (alone.code, alone.severity) == ("dkim.ed25519-only", Severity.WARNING)
    mixed = "{dkim: {selectors: [e, old], algorithm: ed25519}}"
    assert problems(mixed, zone_of="{dkim: {selectors: [e, old]}}") == []
    [kept] = problems(
        "{dkim: {selectors: [old], algorithm: ed25519}}", zone_of="{dkim: {selectors: [old]}}"
    )
    assert kept.message == (
        "example.com: no selector has an ed25519 key: old (rsa) keep their keys, and algorithm "
        "ed25519 applies to new selectors only"
    )


def test_spf_is_read_by_pyspf_and_its_lookups_are_counted() -> None:
    assert problems("{dkim: {selectors: [s1]}, spf: {include: [_spf.google.com]}}") == []
    [macro] = problems("{dkim: {selectors: [s1]}, spf: {include: ['%{z}.example.net']}}")
    assert (macro.code, macro.line) == ("spf.syntax", 7)
    assert macro.message.startswith("the SPF record of example.com would be invalid: ")
    assert macro.message.endswith(" in 'include:%{z}.example.net'")
    includes = ", ".join(f"i{n}.example.net" for n in range(10))
    [many] = problems(f"{{dkim: {{selectors: [s1]}}, spf: {{include: [{includes}]}}}}")
    assert many.code == "spf.too-many-lookups"
    assert many.message.startswith("the SPF record of example.com makes 11 DNS lookups (mx, ")
    [unlisted] = problems("{dkim: {selectors: [s1]}, spf: {mx: false, ip4: [203.0.113.0/24]}}")
    assert (unlisted.code, unlisted.severity) == ("spf.server-not-listed", Severity.WARNING)
    assert problems("{dkim: {selectors: [s1]}, spf: {mx: false, ip4: [198.51.100.0/24]}}") == []


def test_dmarc_that_enforces_without_dkim_is_a_warning() -> None:
    [found] = problems("{dmarc: {p: reject}}")
    assert (found.code, found.line, found.severity) == ("dmarc.without-dkim", 7, Severity.WARNING)
    assert problems("{dmarc: {p: none}}") == []
    assert problems("{dkim: {selectors: [s1]}, dmarc: {p: reject}}") == []


def rows(base: State, new: State) -> list[tuple[str, str, str | None, str | None, str]]:
    plan = make_plan(base, new)
    return [
        (c.op, c.subject, c.before, c.after, c.note) for c in plan.changes if c.area == "record"
    ]


def test_a_plan_shows_the_dmarc_record_that_changes() -> None:
    quarantine = state(
        "{dkim: {selectors: [old]}, dmarc: {p: quarantine}}", zone_of="{dkim: {selectors: [old]}}"
    )
    reject = state(
        "{dkim: {selectors: [old]}, dmarc: {p: reject}}", zone_of="{dkim: {selectors: [old]}}"
    )
    assert rows(quarantine, reject) == [
        ("changed", "_dmarc.example.com TXT", "v=DMARC1; p=quarantine", "v=DMARC1; p=reject", "")
    ]


def test_a_plan_orders_a_rotation() -> None:
    old = state("{dkim: {selectors: [old]}}", zone_of="{dkim: {selectors: [old]}}")
    both = state("{dkim: {selectors: [new, old]}}", zone_of="{dkim: {selectors: [old]}}")
    assert rows(old, both) == [
        (
            "added",
            "new._domainkey.example.com TXT",
            None,
            "(the key the server makes when this revision is applied)",
            "publish new._domainkey.example.com TXT (the daemon commits its record to "
            "dns/example.com.zone), then remove old from dkim.selectors",
        )
    ]
    published = state("{dkim: {selectors: [mid]}}", zone_of="{dkim: {selectors: [mid, old]}}")
    before = state("{dkim: {selectors: [mid, old]}}", zone_of="{dkim: {selectors: [mid, old]}}")
    [(op, subject, shown, after, note)] = rows(before, published)
    assert (op, subject, after) == ("removed", "old._domainkey.example.com TXT", None)
    assert shown == f"v=DKIM1; k=rsa; p={RSA.p[:16]}… (392 characters)"
    assert note == (
        "keep old._domainkey.example.com in DNS a few days more (mail already sent is "
        "checked against it), then delete it"
    )


def test_plan_live_does_not_list_the_files_gitops_mail_renders_itself() -> None:
    new = state("{dkim: {selectors: [old]}}", zone_of="{dkim: {selectors: [old]}}")
    live_files = {
        **{p: e.data for p, e in new.snapshot.files.items()},
        "chasquid/domains/example.com/dkim:old.pem": b"-----BEGIN PRIVATE KEY-----\n",
        f"chasquid/{HOOK}": hook_source({"example.com": ["old"]}, repo_hook=True),
        f"chasquid/{HOOK}.repo": b"#!/bin/sh\n",
    }
    live = load_state(snapshot(base=live_files))
    assert make_plan(live, new).changes == ()


def test_pyspf_reads_every_term_the_zone_can_publish() -> None:
    """What the rules let through, pyspf's parser accepts: the schema and the rules
    judge plain terms, pyspf only macros."""
    terms = ["mx", "a", "ip4:198.51.100.0/24", "ip6:2001:db8::/32", "include:_spf.google.com"]
    terms += ["include:%{d}.spf.example.net", "-all", "~all", "?all"]
    assert syntax_error(terms, "example.com") is None
    assert syntax_error(["include:%{z}.example.net"], "example.com") is not None
