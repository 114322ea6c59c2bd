"""Live DNS answers judged against what DNS should say (core.dns), without a network."""

from __future__ import annotations

from support.repo import snapshot

from gitops_mail.core.dns import findings as fnd
from gitops_mail.core.dns.answer import Answer, Expect, SpfEval
from gitops_mail.core.dns.check import expectations, settle, unchecked, verdict
from gitops_mail.core.dns.records import key_id, tags
from gitops_mail.core.dns.want import Desired, DomainWant, desired, questions
from gitops_mail.core.state import load_state

HOST = "mail.example.com"
V6_PTR = "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
DOMAIN = DomainWant(
    name="example.com",
    spf="v=spf1 mx -all",
    dmarc="v=DMARC1; p=reject; rua=mailto:d@example.com",
    mta_sts="v=STSv1; id=abc",
    tls_rpt=None,
    dkim=(("s1", "KEY1"), ("s2", None)),
)
WANT = Desired(HOST, ("192.0.2.7", "2001:db8::7"), (DOMAIN,))
GOOD = SpfEval((("192.0.2.7", "pass", ""), ("2001:db8::7", "pass", "")), 2)
RIGHT = {
    ("mail.example.com.", "A"): Answer(("192.0.2.7",), 300),
    ("mail.example.com.", "AAAA"): Answer(("2001:db8::7",), 300),
    ("7.2.0.192.in-addr.arpa.", "PTR"): Answer(("mail.example.com.",), 300),
    (V6_PTR, "PTR"): Answer(("Mail.Example.com.",), 300),
    ("example.com.", "MX"): Answer(("10 mail.example.com.",), 300),
    ("example.com.", "TXT"): Answer(("v=spf1 mx -all", "google-site-verification=x"), 300),
    ("s1._domainkey.example.com.", "TXT"): Answer(("v=DKIM1; k=rsa; p=KEY1",), 300),
    ("_dmarc.example.com.", "TXT"): Answer(("v=DMARC1; p=reject; rua=mailto:d@example.com",), 60),
    ("_mta-sts.example.com.", "TXT"): Answer(("v=STSv1; id=abc",), 300),
}


def judged(
    changes: dict[tuple[str, str], Answer] | None = None, spf: SpfEval = GOOD
) -> list[tuple[str, str, str, str]]:
    answers = {**RIGHT, **(changes or {})}
    found = [
        verdict(e, answers.get(e.question, Answer()))
        for e in expectations(WANT, answers, {"example.com": spf})
    ]
    return [(f.check, f.subject, f.status, f.message) for f in found if f.status != fnd.OK]


def expect(check: str) -> Expect:
    (found,) = [e for e in expectations(WANT, RIGHT, {"example.com": GOOD}) if e.check == check]
    return found


def test_right_answers_pass_except_a_selector_without_a_local_key() -> None:
    assert judged() == [
        (
            "dkim",
            "s2._domainkey.example.com",
            "warning",
            "no local key for selector s2 yet: nothing to compare with",
        )
    ]


def test_the_questions_follow_the_report_order_once_each() -> None:
    assert questions(WANT) == [
        ("mail.example.com.", "A"),
        ("mail.example.com.", "AAAA"),
        ("7.2.0.192.in-addr.arpa.", "PTR"),
        (V6_PTR, "PTR"),
        ("example.com.", "MX"),
        ("example.com.", "TXT"),
        ("s1._domainkey.example.com.", "TXT"),
        ("s2._domainkey.example.com.", "TXT"),
        ("_dmarc.example.com.", "TXT"),
        ("_mta-sts.example.com.", "TXT"),
    ]


def test_addresses_must_equal_the_manifest_and_ptr_must_resolve_back() -> None:
    a = ("mail.example.com.", "A")
    assert judged({a: Answer(("192.0.2.7", "192.0.2.8"), 300)})[:1] == [
        ("a", HOST, "error", "192.0.2.7, 192.0.2.8; expected 192.0.2.7")
    ]
    assert judged({a: Answer(("192.0.2.8",), 300)})[:2] == [
        ("a", HOST, "error", "192.0.2.8; expected 192.0.2.7"),
        ("ptr", "192.0.2.7", "error", "mail.example.com. does not resolve back to 192.0.2.7"),
    ]


def test_an_extra_mx_is_fine_a_missing_one_is_not() -> None:
    mx = ("example.com.", "MX")
    assert judged({mx: Answer(("10 mail.example.com.", "20 backup.example.net."), 1)})[:1] == [
        judged()[0]
    ]
    assert judged({mx: Answer()})[:1] == [
        ("mx", "example.com", "error", "no MX record; expected 10 mail.example.com.")
    ]


def test_spf_failures_and_the_lookup_limit_are_each_named() -> None:
    bad = SpfEval((("192.0.2.7", "softfail", "x"), ("2001:db8::7", "pass", "")), 11, "")
    assert judged(spf=bad)[:1] == [
        (
            "spf",
            "example.com",
            "error",
            "softfail for 192.0.2.7; needs 11 DNS lookups; receivers give up after 10",
        )
    ]
    broken = SpfEval((("192.0.2.7", "permerror", "Unknown mechanism found: moo"),), 1, "")
    assert judged(spf=broken)[0][3] == "permerror for 192.0.2.7 (Unknown mechanism found: moo)"


def test_a_passing_spf_record_other_than_the_zones_is_a_warning() -> None:
    txt = ("example.com.", "TXT")
    assert judged({txt: Answer(("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 mx -all",), 1)})[0] == (
        "spf",
        "example.com",
        "warning",
        'passes for 192.0.2.7, 2001:db8::7 (2 of 10 lookups), but "v=spf1 ip4:192.0.2.0/24'
        ' ip6:2001:db8::/32 mx -all" differs from the zone\'s "v=spf1 mx -all"',
    )


def test_dkim_revoked_stale_and_duplicate_keys() -> None:
    name = ("s1._domainkey.example.com.", "TXT")
    messages = [
        judged({name: Answer(values, 1)})[0][3]
        for values in (
            ("v=DKIM1; p=",),
            ("v=DKIM1; p=OTHER",),
            ("v=DKIM1; p=KEY1", "v=DKIM1; p=KEY1"),
            ("something else",),
        )
    ]
    assert messages == [
        "published with an empty p= (revoked)",
        f"published key {key_id('OTHER')} is not the local key {key_id('KEY1')}",
        "2 DKIM records",
        "not published",
    ]


def test_dmarc_is_compared_tag_by_tag_and_must_be_valid_and_single() -> None:
    name = ("_dmarc.example.com.", "TXT")
    messages = [
        next(p[3] for p in judged({name: Answer(values, 1)}) if p[0] == "dmarc")
        for values in (
            ("v=DMARC1; p=none; rua=mailto:d@example.com; pct=50",),
            ("v=DMARC1; p=reject",),
            ("v=DMARC1; p=maybe",),
            ("v=DMARC1; p=reject", "v=DMARC1; p=none"),
            ("v=spf1 -all",),
        )
    ]
    assert messages == [
        "p=none, expected p=reject; pct=50 is not in the manifest",
        "rua= is missing (expected rua=mailto:d@example.com)",
        '"v=DMARC1; p=maybe" is not valid: p= must be none, quarantine or reject',
        "2 DMARC records: receivers ignore them all",
        'no DMARC record; expected "v=DMARC1; p=reject; rua=mailto:d@example.com"',
    ]


def test_mta_sts_names_a_changed_policy_id() -> None:
    name = ("_mta-sts.example.com.", "TXT")
    assert judged({name: Answer(("v=STSv1; id=old",), 1)})[-1][3] == "id=old, expected id=abc"


def test_a_failed_query_is_an_error_that_says_so() -> None:
    found = verdict(expect("mx"), Answer(error="the resolver failed: SERVFAIL"))
    assert (found.status, found.message) == ("error", "no answer: the resolver failed: SERVFAIL")


# --- wrong, or not propagated yet ------------------------------------------------------


def test_settle_tells_propagating_from_wrong_and_from_unknown() -> None:
    mx = expect("mx")
    stale = Answer(("10 old.example.com.",), 120)
    first = verdict(mx, stale)
    right, wrong = Answer(("10 mail.example.com.",), 300), Answer(("10 old.example.com.",), 300)
    late = settle(mx, first, stale, [("ns1 192.0.2.53", right), ("ns2 192.0.2.54", right)])
    assert (late.status, late.ttl) == ("warning", 120)
    assert late.message == (
        "not propagated yet: authoritative servers (ns1 192.0.2.53, ns2 192.0.2.54) already"
        " answer as expected; the resolver still has: 10 old.example.com.; expected 10"
        " mail.example.com."
    )
    half = settle(mx, first, stale, [("ns1 a", right), ("ns2 b", wrong)])
    assert half.message.startswith("not propagated yet: 1 of 2 authoritative servers (ns1 a)")
    agree = settle(mx, first, stale, [("ns1 a", wrong)])
    assert (agree.status, agree.message) == (
        "error",
        first.message + " (the authoritative servers agree)",
    )
    unknown = settle(mx, first, stale, [("ns1 a", Answer(error="timed out"))])
    assert unknown.message == first.message + " (authoritative servers: ns1 a: timed out)"


def test_an_spf_record_that_is_the_zones_own_is_never_propagating() -> None:
    spf = expect("spf")
    record = Answer(("v=spf1 mx -all",), 300)
    bad = SpfEval((("192.0.2.7", "fail", ""),), 1)
    (finding,) = [
        verdict(e, record)
        for e in expectations(WANT, RIGHT, {"example.com": bad})
        if e.check == "spf"
    ]
    assert finding.hint.startswith("the record is the zone's")
    assert settle(spf, finding, record, [("ns1 a", record)]).status == "error"


# --- what the check wants, from a state ------------------------------------------------


def test_desired_reads_the_zone_values_and_the_manifest_addresses() -> None:
    state = load_state(
        snapshot(
            base={
                "gitops-mail.yaml": "version: 1\nserver:\n  ipv6: ['2001:db8::7']\n"
                "  ipv4: [198.51.100.7]\ndomains:\n  bücher.example:\n"
                "    dkim: {selectors: [a]}\n    dmarc: {p: none}\n",
                "chasquid/chasquid.conf": 'hostname: "mail.example.com"\n',
            }
        )
    )
    zone = {("_dmarc.xn--bcher-kva.example.", "TXT"): ("v=DMARC1; p=none",)}
    want = desired(state, {"xn--bcher-kva.example": zone}, {"xn--bcher-kva.example": {"a": "K"}})
    assert want == Desired(
        "mail.example.com",
        ("198.51.100.7", "2001:db8::7"),
        (DomainWant("xn--bcher-kva.example", None, "v=DMARC1; p=none", None, None, (("a", "K"),)),),
    )


def test_without_addresses_the_address_checks_are_named_as_skipped() -> None:
    (found,) = unchecked(Desired(HOST, (), ()))
    assert (found.check, found.status, found.message) == (
        "a",
        "warning",
        "the manifest lists no server addresses: A, AAAA and PTR are not checked",
    )


def test_tags_are_read_as_receivers_read_them() -> None:
    assert tags(" v=DMARC1 ;P=reject; rua = mailto:a@b ;;x") == {
        "v": "DMARC1",
        "p": "reject",
        "rua": "mailto:a@b",
    }


# --- the report --------------------------------------------------------------------------


def test_exit_codes_and_the_table() -> None:
    ok = fnd.Finding("mx", "example.com", "ok", "points at mail.example.com", ttl=300)
    warn = fnd.Finding("tls", "465 (TLS)", "warning", "expires on 2030-01-01", hint="renew")
    assert (fnd.exit_code([ok]), fnd.exit_code([ok, warn]), fnd.exit_code([warn], strict=True)) == (
        0,
        0,
        1,
    )
    assert fnd.table([ok, warn]) == (
        "STATUS   CHECK  SUBJECT      TTL  MESSAGE\n"
        "OK       mx     example.com  300  points at mail.example.com\n"
        "WARNING  tls    465 (TLS)         expires on 2030-01-01\n"
        "                                  hint: renew\n"
        "0 errors, 1 warnings, 1 ok\n"
    )


def test_without_a_hostname_only_that_is_said_of_mx_and_addresses() -> None:
    want = Desired("", ("192.0.2.7",), (DOMAIN,))
    (found,) = unchecked(want)
    assert (found.check, found.status, found.message) == (
        "mx",
        "error",
        "chasquid.conf sets no hostname: MX, A, AAAA and PTR are not checked",
    )
    checks = [e.check for e in expectations(want, {}, {})]
    assert checks == ["spf", "dkim", "dkim", "dmarc", "mta-sts"]
