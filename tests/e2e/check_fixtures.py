"""A host whose DNS is published, for ``gitops-mail check`` (a pytest plugin).

Load with ``pytest_plugins = ["apply_fixtures", "dns_fixtures", "check_fixtures"]``.

``published(...) -> Published``: the apply sandbox (a real chasquid under the
supervisor, a conf repo, host settings) with a manifest that declares the
server's addresses (192.0.2.7, 2001:db8::7) and example.test's DKIM, SPF,
DMARC, MTA-STS and TLS-RPT, applied (the host makes its DKIM key); the zone
gitops-mail generates for it with that key, committed as ``dns/example.test.zone``
as commit-back would, and served by NSD on 127.0.0.1:53 with the reverse zones
of both addresses.
``Published.serve(zone=..., ptr=...)`` serves changed data; ``check(*args)``
runs ``gitops-mail check --format json`` in this process.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

pytest.register_assert_rewrite("apply_fixtures", "dns_fixtures")

from apply_fixtures import DOMAIN, MANIFEST_PATH, Sandbox  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from dns_fixtures import DnsServer, reverse_zone  # noqa: E402
from support.repo import snapshot  # noqa: E402

from gitops_mail.core.dns.zone import render_zones, txt_strings  # noqa: E402
from gitops_mail.core.state import load_state  # noqa: E402
from gitops_mail.host.dkim.store import public_keys  # noqa: E402

ADDRESSES = ("192.0.2.7", "2001:db8::7")
HOSTNAME = "mail.example.test"
ZONE_PATH = f"dns/{DOMAIN}.zone"
SELECTOR = "s2026"
SERVER = 'server:\n  ipv4: [192.0.2.7]\n  ipv6: ["2001:db8::7"]\n'
DOMAIN_SETTINGS = f"""\
  {DOMAIN}:
    dkim: {{selectors: [{SELECTOR}]}}
    spf: {{mx: false, ip4: [192.0.2.7], include: [_spf.{DOMAIN}], all: "-all"}}
    dmarc: {{p: quarantine, rua: ["mailto:dmarc@{DOMAIN}"]}}
    mta_sts: {{mode: enforce}}
    tls_rpt: {{rua: ["mailto:tls@{DOMAIN}"]}}
"""


@functools.cache
def dkim_key(which: int = 0) -> str:
    """A DKIM public key (``p=``), the same for the whole session per ``which``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def dkim_record(key: str) -> str:
    value = f"v=DKIM1; k=rsa; p={key}".encode()
    return f"{SELECTOR}._domainkey IN TXT {txt_strings(value)}\n"


def zone_line(zone: str, owner: str, rtype: str) -> str:
    """The one line of ``zone`` holding ``owner``'s record of ``rtype`` (columns as written)."""
    pattern = rf"^{re.escape(owner)}\s+IN\s+{rtype}\s.*$"
    [found] = re.findall(pattern, zone, flags=re.M)
    return str(found)


def without_dkim(zone: str) -> str:
    """``zone`` without its DKIM record."""
    return "".join(
        line for line in zone.splitlines(True) if not line.startswith(f"{SELECTOR}._domainkey ")
    )


def check_manifest(box: Sandbox) -> str:
    manifest = box.manifest().replace(f"  {DOMAIN}: {{}}\n", DOMAIN_SETTINGS)
    return manifest.replace("chasquid:\n", SERVER + "chasquid:\n", 1)


# A record of the zone as the DNS provider holds it that gitops-mail does not generate:
# the policy the SPF record includes (so SPF is evaluated with an include followed).
INCLUDED = '_spf IN TXT "v=spf1 ip6:2001:db8::7 -all"\n'


@dataclass
class Published:
    box: Sandbox
    dns: DnsServer
    zone: str  # dns/example.test.zone as the daemon commits it, the host's DKIM key included
    local_key: str  # the p= of the host's DKIM key, from its key store

    @property
    def served_zone(self) -> str:
        """example.test as the DNS provider has it: the committed zone and ``INCLUDED``."""
        return self.zone + INCLUDED

    def serve(
        self,
        *,
        zone: str | None = None,
        ptr: Mapping[str, str] | None = None,
        on: DnsServer | None = None,
    ) -> None:
        """Serve ``zone`` (default: ``served_zone``) for example.test and the reverse zones
        (``ptr``: other records for an address's zone), on ``self.dns`` or ``on``."""
        server = on or self.dns
        server.set_zone(DOMAIN, self.served_zone if zone is None else zone)
        for address in ADDRESSES:
            origin, records = reverse_zone(address, HOSTNAME)
            server.set_zone(origin, (ptr or {}).get(address, records))

    def check(self, *args: str) -> tuple[int, dict[str, Any]]:
        done = self.box.run("check", "--format", "json", *args)
        assert done.err == "", done.err
        return done.code, json.loads(done.out)


def problems(doc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [
        (f["check"], f["subject"], f["status"], f["message"])
        for f in doc["findings"]
        if f["status"] != "ok"
    ]


@pytest.fixture
def published(sandbox: Sandbox, dns_server: Callable[..., DnsServer]) -> Callable[..., Published]:
    """``published(dns=None) -> Published``: applied, committed, served (see the module)."""

    def make(dns: DnsServer | None = None) -> Published:
        files: dict[str, str | bytes | None] = {
            **sandbox.base_files(),
            MANIFEST_PATH: check_manifest(sandbox),
        }
        sandbox.commit({MANIFEST_PATH: files[MANIFEST_PATH]}, "DNS settings")
        sandbox.apply_ok()  # makes the DKIM key in the host's key store
        state = load_state(snapshot(base={k: v for k, v in files.items() if v is not None}))
        keys = public_keys(sandbox.state_dir, state.manifest)
        zone = render_zones(state, keys)[ZONE_PATH].decode()
        sandbox.commit({ZONE_PATH: zone}, "publish DNS")  # what commit-back would do
        sandbox.apply_ok()
        done = Published(sandbox, dns or dns_server(), zone, keys[(DOMAIN, SELECTOR)].p)
        done.serve()
        return done

    return make
