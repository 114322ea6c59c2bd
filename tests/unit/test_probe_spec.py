"""The probe's pure parts: where to probe, which fingerprint, what a result says."""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Address, IPv6Address

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_mail.errors import InvalidConfig
from gitops_mail.host.probe.smtp import probe
from gitops_mail.host.probe.spec import (
    Check,
    Endpoint,
    ProbeResult,
    ProbeSpec,
    endpoints_from_config,
    leaf_fingerprint,
)

# --- endpoints_from_config -------------------------------------------------------


def test_systemd_means_the_standard_ports_on_loopback() -> None:
    assert endpoints_from_config(("systemd",), ("systemd",), ("systemd",)) == (
        Endpoint("127.0.0.1", 25),
        Endpoint("127.0.0.1", 587),
        Endpoint("127.0.0.1", 465),
    )


def test_host_and_port_are_probed_as_written() -> None:
    assert endpoints_from_config(
        ("127.0.0.1:2525",), ("[::1]:10587",), ("mail.example.test:10465",)
    ) == (
        Endpoint("127.0.0.1", 2525),
        Endpoint("::1", 10587),
        Endpoint("mail.example.test", 10465),
    )


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("0.0.0.0:25", Endpoint("127.0.0.1", 25)),
        (":25", Endpoint("127.0.0.1", 25)),
        ("[::]:25", Endpoint("::1", 25)),
        ("[0:0::0]:25", Endpoint("::1", 25)),
        ("192.0.2.7:25", Endpoint("192.0.2.7", 25)),
        ("[2001:db8::1]:25", Endpoint("2001:db8::1", 25)),
        ("127.0.0.1:smtp", Endpoint("127.0.0.1", 25)),
        ("127.0.0.1:025", Endpoint("127.0.0.1", 25)),
    ],
)
def test_every_address_is_reached_from_this_host(address: str, expected: Endpoint) -> None:
    assert endpoints_from_config((address,), (), ()) == (expected, None, None)


def test_empty_lists_are_not_probed() -> None:
    assert endpoints_from_config((), (), ()) == (None, None, None)
    assert endpoints_from_config((), ("systemd",), ()) == (None, Endpoint("127.0.0.1", 587), None)


def test_only_the_first_address_of_a_list_is_probed() -> None:
    smtp, _, tls = endpoints_from_config(
        ("127.0.0.1:2525", "[::1]:2525"), (), ("systemd", "127.0.0.1:10465")
    )
    assert smtp == Endpoint("127.0.0.1", 2525)
    assert tls == Endpoint("127.0.0.1", 465)


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "[::1]", ":99999", "host:imap", ":²"]
)
def test_an_address_without_a_fixed_port_cannot_be_probed(address: str) -> None:
    with pytest.raises(InvalidConfig) as raised:
        endpoints_from_config((), (address,), ())
    assert raised.value.message == f'cannot probe listen address "{address}": it has no fixed port'


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses(), st.integers(1, 65535))
def test_any_ip_and_port_round_trip(ip: IPv4Address | IPv6Address, port: int) -> None:
    host = str(ip)
    written = f"[{host}]:{port}" if ip.version == 6 else f"{host}:{port}"
    smtp, _, _ = endpoints_from_config((written,), (), ())
    loopback = "::1" if ip.version == 6 else "127.0.0.1"
    assert smtp == Endpoint(loopback if ip.is_unspecified else host, port)
    assert str(smtp) == (f"[{smtp.host}]:{port}" if ip.version == 6 else f"{smtp.host}:{port}")


# --- leaf_fingerprint --------------------------------------------------------------


@pytest.fixture(scope="module")
def chain() -> tuple[bytes, bytes]:
    """A PEM chain (leaf, then intermediate) and the leaf's DER, read by cryptography."""
    intermediate = trustme.CA().create_child_ca()
    leaf = intermediate.issue_cert("mail.example.test")
    pem = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    der = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).public_bytes(Encoding.DER)
    assert len(leaf.cert_chain_pems) == 2  # leaf, intermediate
    return pem, der


def test_fingerprint_is_the_sha256_of_the_leaf_der(chain: tuple[bytes, bytes]) -> None:
    pem, der = chain
    assert leaf_fingerprint(pem) == hashlib.sha256(der).hexdigest()


def test_fingerprint_ignores_text_around_and_crlf(chain: tuple[bytes, bytes]) -> None:
    pem, der = chain
    noisy = b"subject=CN = mail.example.test\r\n" + pem.replace(b"\n", b"\r\n")
    assert leaf_fingerprint(noisy) == hashlib.sha256(der).hexdigest()


def test_only_the_first_certificate_counts(chain: tuple[bytes, bytes]) -> None:
    pem, _ = chain
    first_end = pem.index(b"-----END CERTIFICATE-----") + len(b"-----END CERTIFICATE-----\n")
    assert leaf_fingerprint(pem[first_end:]) != leaf_fingerprint(pem)


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (b"", "no PEM certificate found"),
        (
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "no PEM certificate found",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nMIIBx\n-----END CERTIFICATE-----\n",
            "the first PEM certificate cannot be decoded",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            "the first PEM certificate cannot be decoded",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "the first PEM certificate cannot be decoded",
        ),
    ],
)
def test_a_chain_without_a_certificate_is_refused(pem: bytes, message: str) -> None:
    with pytest.raises(InvalidConfig) as raised:
        leaf_fingerprint(pem)
    assert raised.value.message == message
    assert raised.value.hint == "the file must hold PEM certificates, the server's own first"


# --- results -----------------------------------------------------------------------


def test_failures_are_the_checks_not_ok() -> None:
    good, bad = Check("smtp.banner", True, "fine"), Check("smtp.ehlo", False, "wrong")
    result = ProbeResult(False, (good, bad), 1.0)
    assert result.failures() == (bad,)


def test_nothing_to_probe_fails() -> None:
    result = probe(ProbeSpec("mail.example.test", None, None, None, frozenset()), deadline=1.0)
    assert not result.ok
    assert result.checks == (Check("probe.endpoints", False, "no listening address to probe"),)
