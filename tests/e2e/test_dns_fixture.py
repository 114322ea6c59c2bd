"""The DNS test server itself: NSD serves zones as gitops-mail writes them, reloads, and two
servers on two loopback addresses answer differently."""

from __future__ import annotations

from collections.abc import Callable

import dns.resolver
import dns.reversename
import pytest
from support.repo import snapshot

pytest.register_assert_rewrite("dns_fixtures")

from dns_fixtures import DnsServer, reverse_zone  # noqa: E402 - after the assertion rewrite

from gitops_mail.core.dns.zone import render_zones  # noqa: E402
from gitops_mail.core.state import load_state  # noqa: E402

pytest_plugins = ["dns_fixtures"]

MANIFEST = """\
version: 1
server:
  ipv4: [192.0.2.7]
  ipv6: ["2001:db8::7"]
domains:
  example.test:
    spf: {all: "-all"}
    dmarc: {p: reject, rua: ["mailto:dmarc@example.test"]}
"""


def generated_zone() -> bytes:
    state = load_state(
        snapshot(
            base={
                "gitops-mail.yaml": MANIFEST,
                "chasquid/chasquid.conf": 'hostname: "mail.example.test"\n',
            }
        )
    )
    return render_zones(state)["dns/example.test.zone"]


def test_a_generated_zone_is_served_as_written_and_the_system_resolver_finds_it(
    dns_server: Callable[..., DnsServer],
) -> None:
    server = dns_server()
    server.set_zone("example.test", generated_zone())
    assert server.ask("example.test", "MX") == ["10 mail.example.test."]
    assert server.ask("mail.example.test", "AAAA") == ["2001:db8::7"]
    assert server.ask("_dmarc.example.test", "TXT") == [
        '"v=DMARC1; p=reject; rua=mailto:dmarc@example.test"'
    ]
    # /etc/resolv.conf in the namespace says 127.0.0.1: the system resolver asks this server
    answer = dns.resolver.resolve("example.test", "TXT")
    assert [b"".join(r.strings) for r in answer] == [b"v=spf1 mx -all"]
    assert answer.rrset is not None and answer.rrset.ttl == 3600


def test_reverse_zones_for_ipv4_and_ipv6(dns_server: Callable[..., DnsServer]) -> None:
    server = dns_server()
    for address in ("192.0.2.7", "2001:db8::7"):
        server.set_zone(*reverse_zone(address, "mail.example.test"))
    assert reverse_zone("192.0.2.7", "mail.example.test") == (
        "2.0.192.in-addr.arpa",
        "7 IN PTR mail.example.test.\n",
    )
    assert server.ask("7.2.0.192.in-addr.arpa", "PTR") == ["mail.example.test."]
    v6 = dns.reversename.from_address("2001:db8::7").to_text()
    assert server.ask(v6, "PTR") == ["mail.example.test."]


def test_a_changed_zone_is_served_once_set_zone_returns_and_a_removed_one_is_refused(
    dns_server: Callable[..., DnsServer],
) -> None:
    server = dns_server()
    server.set_zone("example.test", "@ IN MX 10 old.example.test.\n")
    server.set_zone("example.test", "@ IN MX 10 new.example.test.\n")
    assert server.ask("example.test", "MX") == ["10 new.example.test."]
    server.remove_zone("example.test")
    assert server.ask("example.test", "MX") == []  # REFUSED: not served


def test_two_servers_answer_differently_and_the_ns_points_at_the_second(
    dns_server: Callable[..., DnsServer],
) -> None:
    authoritative = dns_server("127.0.0.2")
    resolver = dns_server("127.0.0.1", ns_address="127.0.0.2")
    authoritative.set_zone("example.test", "@ IN MX 10 new.example.test.\n")
    resolver.set_zone("example.test", "@ IN MX 10 old.example.test.\n")
    assert resolver.ask("example.test", "MX") == ["10 old.example.test."]
    assert authoritative.ask("example.test", "MX") == ["10 new.example.test."]
    assert resolver.ask("ns-gitops-test.example.test", "A") == ["127.0.0.2"]
