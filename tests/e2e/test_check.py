"""``gitops-mail check`` against a real DNS server (NSD) and the real chasquid of a host.

A correct zone passes everything; each record broken in turn is reported,
precisely, and nothing else is; a record right at the zone's authoritative
server but not yet at the resolver is "not propagated yet", not wrong.
"""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import trustme
from support.wait import poll

pytest.register_assert_rewrite("check_fixtures")

from check_fixtures import (  # noqa: E402
    SELECTOR,
    Published,
    dkim_key,
    dkim_record,
    problems,
    without_dkim,
    zone_line,
)
from dns_fixtures import DnsServer  # noqa: E402

from gitops_mail.core.dns.records import key_id  # noqa: E402

pytest_plugins = ["apply_fixtures", "dns_fixtures", "check_fixtures"]


def test_a_correct_zone_passes_every_check(published: Callable[..., Published]) -> None:
    host = published()
    code, doc = host.check()
    assert problems(doc) == []
    assert code == 0
    print(doc)


AGREE = " (the authoritative servers agree)"
INCLUDED = "v=spf1 ip6:2001:db8::7 -all"


def broken(zone: str, old: str, new: str) -> str:
    old = {"MX": zone_line(zone, "@", "MX"), "DMARC": zone_line(zone, "_dmarc", "TXT")}.get(
        old, old
    )
    assert old in zone
    return zone.replace(old, new)


@pytest.mark.parametrize(
    ("what", "old", "new", "expected"),
    [
        (
            "wrong MX",
            "MX",
            "@ IN MX 10 other.example.test.",
            (
                "mx",
                "example.test",
                "error",
                "10 other.example.test.; expected 10 mail.example.test.",
            ),
        ),
        (
            "SPF without the server's IPv6 address (in the policy it includes)",
            INCLUDED,
            "v=spf1 ip6:2001:db8::99 -all",
            ("spf", "example.test", "error", "fail for 2001:db8::7"),
        ),
        (
            "bad DMARC",
            "DMARC",
            '_dmarc IN TXT "v=DMARC1; p=none; rua=mailto:dmarc@example.test"',
            ("dmarc", "example.test", "error", "p=none, expected p=quarantine"),
        ),
    ],
)
def test_each_broken_record_is_reported_and_nothing_else(
    published: Callable[..., Published],
    what: str,
    old: str,
    new: str,
    expected: tuple[str, str, str, str],
) -> None:
    host = published()
    host.serve(zone=broken(host.served_zone, old, new))
    code, doc = host.check()
    check, subject, status, message = expected
    assert problems(doc) == [(check, subject, status, message + AGREE)], what
    assert code == 1


@pytest.mark.parametrize("address", ["192.0.2.7", "2001:db8::7"])
def test_a_missing_ptr_is_reported_for_its_address_only(
    published: Callable[..., Published], address: str
) -> None:
    host = published()
    host.serve(ptr={address: ""})
    code, doc = host.check()
    expected = "no PTR record; expected mail.example.test." + AGREE
    assert problems(doc) == [("ptr", address, "error", expected)]
    assert code == 1


def test_a_stale_dkim_key_is_reported_by_the_ids_of_both_keys(
    published: Callable[..., Published],
) -> None:
    host = published()
    stale = without_dkim(host.served_zone) + dkim_record(dkim_key(1))
    host.serve(zone=stale)
    code, doc = host.check()
    message = f"published key {key_id(dkim_key(1))} is not the local key {key_id(host.local_key)}"
    assert problems(doc) == [
        ("dkim", f"{SELECTOR}._domainkey.example.test", "error", message + AGREE)
    ]
    assert code == 1


def test_an_unpublished_dkim_key_and_two_spf_records(published: Callable[..., Published]) -> None:
    host = published()
    zone = without_dkim(host.served_zone)
    host.serve(zone=zone + '@ IN TXT "v=spf1 -all"\n')
    code, doc = host.check()
    assert problems(doc) == [
        (
            "spf",
            "example.test",
            "error",
            "2 SPF records: receivers fail them all (permerror, RFC 7208 3.2)" + AGREE,
        ),
        ("dkim", f"{SELECTOR}._domainkey.example.test", "error", "not published" + AGREE),
    ]
    assert code == 1


# --- the certificates chasquid serves -------------------------------------------------

TLS_PORTS = ("25 (STARTTLS)", "587 (STARTTLS)", "465 (TLS)")


def install_cert(host: Published, fullchain: bytes, key: bytes, *, restart: bool) -> None:
    """Put a certificate in the live config dir (behind gitops-mail's back), maybe restart."""
    live = host.box.config_dir / "certs" / "mail.example.test"
    (live / "fullchain.pem").write_bytes(fullchain)
    (live / "privkey.pem").write_bytes(key)
    if restart:
        assert host.box.supervisor is not None
        old = host.box.pid()
        host.box.supervisor.restart_child()
        poll(lambda: host.box.pid() not in (None, old), 10, "chasquid restarted")
        poll(lambda: ok_tls(host), 10, "chasquid listening again")


def ok_tls(host: Published) -> bool:
    _, doc = host.check()
    return all(
        f["status"] != "error" or "no certificate" not in f["message"] for f in doc["findings"]
    )


def test_an_expired_served_certificate_is_reported_on_each_port(
    published: Callable[..., Published], test_ca: tuple[trustme.CA, Any]
) -> None:
    host = published()
    leaf = test_ca[0].issue_cert(
        "mail.example.test",
        "127.0.0.1",
        not_before=datetime(2019, 1, 1, tzinfo=UTC),
        not_after=datetime(2020, 1, 1, tzinfo=UTC),
    )
    chain = b"".join(pem.bytes() for pem in leaf.cert_chain_pems)
    install_cert(host, chain, leaf.private_key_pem.bytes(), restart=True)
    code, doc = host.check()
    assert problems(doc) == [("tls", port, "error", "expired on 2020-01-01") for port in TLS_PORTS]
    assert code == 1


def test_a_certificate_on_disk_that_chasquid_does_not_serve_yet(
    published: Callable[..., Published], tls_cert: Callable[..., Any]
) -> None:
    host = published()
    served = hashlib.sha256(ssl.PEM_cert_to_DER_cert(first_pem(host))).hexdigest()
    new = tls_cert("mail.example.test")
    install_cert(host, new.fullchain.read_bytes(), new.privkey.read_bytes(), restart=False)
    code, doc = host.check()
    message = f"not the certificate on disk (serves sha256 {served[:16]})"
    assert problems(doc) == [("tls", port, "error", message) for port in TLS_PORTS]
    assert code == 1


def first_pem(host: Published) -> str:
    text = (host.box.config_dir / "certs" / "mail.example.test" / "fullchain.pem").read_text()
    end = "-----END CERTIFICATE-----"
    return text[: text.index(end) + len(end)]


# --- wrong, or not propagated yet --------------------------------------------------------


def test_not_propagated_yet_is_told_from_wrong_by_asking_the_authoritative_server(
    published: Callable[..., Published], dns_server: Callable[..., DnsServer]
) -> None:
    authoritative = dns_server("127.0.0.2")
    host = published(dns_server("127.0.0.1", ns_address="127.0.0.2"))
    wrong_mx = broken(host.served_zone, "MX", "@ IN MX 10 other.example.test.")
    host.serve(zone=wrong_mx)  # the resolver (127.0.0.1) still has the old answer...
    host.serve(zone=wrong_mx, on=authoritative)  # ...and so does the zone's own server
    code, doc = host.check()
    old = "10 other.example.test.; expected 10 mail.example.test."
    assert problems(doc) == [("mx", "example.test", "error", old + AGREE)]
    assert code == 1

    host.serve(on=authoritative)  # fixed at the source
    code, doc = host.check()
    message = (
        "not propagated yet: authoritative servers (ns-gitops-test.example.test 127.0.0.2)"
        f" already answer as expected; the resolver still has: {old}"
    )
    assert problems(doc) == [("mx", "example.test", "warning", message)]
    (mx,) = [f for f in doc["findings"] if f["check"] == "mx"]
    assert (mx["ttl"], mx["name"]) == (3600, "example.test.")
    assert code == 0  # a warning; --strict fails on it
    assert host.check("--strict")[0] == 1

    code, doc = host.check("--resolver", "127.0.0.2")  # asking the source itself: all good
    assert (code, problems(doc)) == (0, [])
    assert doc["checked"].endswith("through resolver 127.0.0.2")


def test_a_resolver_that_does_not_answer_fails_every_dns_check_and_nothing_crashes(
    published: Callable[..., Published],
) -> None:
    host = published()
    code, doc = host.check("--resolver", "127.0.0.9")
    dns_findings = [f for f in doc["findings"] if f["check"] != "tls"]
    assert {f["status"] for f in dns_findings} == {"error"}
    assert {f["message"] for f in dns_findings} == {
        "no answer: 127.0.0.9 did not answer within 3 s"
    }
    assert [f["status"] for f in doc["findings"] if f["check"] == "tls"] == ["ok"] * 3
    assert code == 1


# --- the command line ----------------------------------------------------------------


def test_the_table_names_each_problem_with_its_ttl_and_hint_and_exits_1(
    published: Callable[..., Published],
) -> None:
    host = published()
    host.serve(zone=broken(host.served_zone, "DMARC", '_dmarc IN TXT "v=DMARC1; p=none"'))
    done = host.box.gm("check")
    assert done.code == 1, done.err
    lines = done.out.splitlines()
    assert lines[0].startswith("checked ") and "(live on this host)" in lines[0]
    assert lines[-1] == "1 errors, 0 warnings, 12 ok"
    (row,) = [line for line in lines if line.startswith("ERROR")]
    assert row.split()[:4] == ["ERROR", "dmarc", "example.test", "3600"]
    assert row.endswith(
        "p=none, expected p=quarantine; rua= is missing (expected rua=mailto:dmarc@example.test)"
        + AGREE
    )
    hint = lines[lines.index(row) + 1]
    assert hint.strip() == "hint: publish the DMARC record of dns/example.test.zone"


def test_a_checkout_is_checked_against_dns_only(published: Callable[..., Published]) -> None:
    host = published()
    done = host.box.run("check", "--repo", str(host.box.workdir.path), "--format", "json")
    doc = json.loads(done.out)
    assert done.code == 0, done.err
    assert [f for f in doc["findings"] if f["check"] == "tls"] == []
    assert problems(doc) == []
    assert doc["revision"] == host.box.tip()


def test_an_spf_policy_past_ten_lookups_is_counted_as_receivers_count_it(
    published: Callable[..., Published],
) -> None:
    host = published()
    hosts = [f"a{i}.example.test" for i in range(1, 12)]
    terms = " ".join(f"a:{name}" for name in hosts)
    zone = broken(host.served_zone, INCLUDED, f"v=spf1 {terms} ip6:2001:db8::7 -all")
    for i, name in enumerate(hosts, 100):  # no void lookup: each name has both families
        zone += f"{name}. IN A 192.0.2.{i}\n{name}. IN AAAA 2001:db8::{i}\n"
    host.serve(zone=zone)
    code, doc = host.check()
    expected = (
        "permerror for 2001:db8::7 (SPF Permanent Error: Too many DNS lookups);"
        " needs 12 DNS lookups; receivers give up after 10"
    )
    assert problems(doc) == [("spf", "example.test", "error", expected + AGREE)]
    assert code == 1
