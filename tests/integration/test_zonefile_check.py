"""The real zone checker (BIND's named-checkzone) accepts every rendered zone.

Each fragment is checked as users deploy it: ``$INCLUDE``d from a zone file
that has the SOA and NS its DNS server owns. ``named-compilezone`` then prints
the records as BIND read them, so split and escaped TXT strings are proven to
mean what the manifest says.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from support.tools import needs

from gitops_mail.core.dns.zone import render_zones
from gitops_mail.core.problems import Severity
from gitops_mail.core.snapshot import Entry, Snapshot
from gitops_mail.core.state import load_state

CHECKZONE = shutil.which("named-checkzone")
COMPILEZONE = shutil.which("named-compilezone")
pytestmark = needs("named-checkzone", "named-compilezone", why="bind9-utils")

# Fail on everything the checker can be strict about; check only in-zone names
# (-i local) so that no test depends on the network.
STRICT = ["-i", "local", "-k", "fail", "-m", "fail", "-M", "fail", "-n", "fail", "-S", "fail"]

SERVER = '  ipv4: [198.51.100.7, 203.0.113.9]\n  ipv6: ["2001:db8::7"]\n'
FULL = f"""\
version: 1
server:
{SERVER}domains:
  example.com:
    dkim: {{selectors: [s2026]}}
    spf: {{include: [_spf.google.com], ip4: [192.0.2.0/24], ip6: ["2001:db8:1::/48"]}}
    dmarc: {{p: quarantine, pct: 25, fo: "1", rua: ["mailto:dmarc@example.com"]}}
    mta_sts: {{mode: enforce, max_age: 86400}}
    tls_rpt: {{rua: ["mailto:tls@example.com"]}}
  example.org:
    spf: {{mx: true, all: "-all"}}
  bücher.example:
    dmarc: {{p: reject, rua: ["mailto:dmarc@bücher.example", "mailto:postmaster@example.com"]}}
  long.example:
    spf: {{include: [{", ".join(f"_spf{i:02d}.long-provider-name.example" for i in range(12))}]}}
  example.net: {{}}
"""


# The addresses are documentation ones (RFC 5737, 3849), accepted as a repo would.
ACCEPT = (
    "accept:\n  - {code: manifest.ip-placeholder, at: gitops-mail.yaml, "
    "why: documentation addresses in tests}\n"
)


def rendered(manifest: str, hostname: str) -> dict[str, bytes]:
    files = {
        "gitops-mail.yaml": Entry((manifest + ACCEPT).encode()),
        "chasquid/chasquid.conf": Entry(f'hostname: "{hostname}"\n'.encode()),
    }
    state = load_state(Snapshot(files, "test"))
    assert [p for p in state.problems if p.severity is not Severity.ACCEPTED] == []
    return render_zones(state)


def wrap(tmp_path: Path, path: str, data: bytes) -> tuple[str, Path]:
    """A zone file with the SOA and NS a DNS server owns, including the fragment."""
    fragment = tmp_path / path
    fragment.parent.mkdir(parents=True, exist_ok=True)
    fragment.write_bytes(data)
    origin = fragment.name.removesuffix(".zone")
    zone = tmp_path / f"{origin}.db"
    zone.write_text(
        "$TTL 3600\n"
        "@ IN SOA ns1.dns-provider.invalid. hostmaster.dns-provider.invalid."
        " 1 7200 3600 1209600 3600\n"
        "@ IN NS ns1.dns-provider.invalid.\n"
        f"$INCLUDE {fragment}\n"
    )
    return origin, zone


def check(origin: str, zone: Path) -> subprocess.CompletedProcess[str]:
    assert CHECKZONE is not None
    return subprocess.run(
        [CHECKZONE, *STRICT, origin, str(zone)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def records(origin: str, zone: Path) -> list[str]:
    """The zone as BIND read it, one record per line (SOA and NS left out)."""
    assert COMPILEZONE is not None
    done = subprocess.run(
        [COMPILEZONE, *STRICT, "-s", "full", "-o", "-", origin, str(zone)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    lines = [" ".join(line.split()) for line in done.stdout.splitlines()]
    return [line for line in lines if " IN " in line and " SOA " not in line and " NS " not in line]


@pytest.mark.parametrize("hostname", ["mail.example.com", "example.com", "mx.elsewhere.example"])
def test_named_checkzone_accepts_every_zone(tmp_path: Path, hostname: str) -> None:
    zones = rendered(FULL, hostname)
    assert sorted(zones) == [
        "dns/example.com.zone",
        "dns/example.net.zone",
        "dns/example.org.zone",
        "dns/long.example.zone",
        "dns/xn--bcher-kva.example.zone",
    ]
    for path, data in zones.items():
        origin, zone = wrap(tmp_path / hostname, path, data)
        done = check(origin, zone)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines() == [f"zone {origin}/IN: loaded serial 1", "OK"], path


POLICY = b"version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n"
POLICY_ID = hashlib.sha256(POLICY).hexdigest()[:20]  # changes whenever the policy does


def test_bind_reads_the_records_the_manifest_asks_for(tmp_path: Path) -> None:
    zones = rendered(FULL, "mail.example.com")
    assert records(*wrap(tmp_path, "dns/example.com.zone", zones["dns/example.com.zone"])) == [
        "example.com. 3600 IN MX 10 mail.example.com.",
        'example.com. 3600 IN TXT "v=spf1 mx ip4:192.0.2.0/24 ip6:2001:db8:1::/48'
        ' include:_spf.google.com ~all"',
        '_dmarc.example.com. 3600 IN TXT "v=DMARC1; p=quarantine; pct=25;'
        ' rua=mailto:dmarc@example.com; fo=1"',
        f'_mta-sts.example.com. 3600 IN TXT "v=STSv1; id={POLICY_ID}"',
        '_smtp._tls.example.com. 3600 IN TXT "v=TLSRPTv1; rua=mailto:tls@example.com"',
        "mail.example.com. 3600 IN A 198.51.100.7",
        "mail.example.com. 3600 IN A 203.0.113.9",
        "mail.example.com. 3600 IN AAAA 2001:db8::7",
    ]
    idna = zones["dns/xn--bcher-kva.example.zone"]
    assert records(*wrap(tmp_path, "dns/xn--bcher-kva.example.zone", idna)) == [
        "xn--bcher-kva.example. 3600 IN MX 10 mail.example.com.",
        '_dmarc.xn--bcher-kva.example. 3600 IN TXT "v=DMARC1; p=reject;'
        ' rua=mailto:dmarc@xn--bcher-kva.example,mailto:postmaster@example.com"',
    ]


def test_bind_joins_a_split_txt_record_back_into_the_spf_value(tmp_path: Path) -> None:
    zones = rendered(FULL, "mail.example.com")
    (spf,) = records(*wrap(tmp_path, "dns/long.example.zone", zones["dns/long.example.zone"]))[1:]
    strings = spf.split(" TXT ", 1)[1]
    parts = [part.strip('"') for part in strings.split('" "')]
    assert [len(part) for part in parts] == [255, 255, 8]
    includes = " ".join(f"include:_spf{i:02d}.long-provider-name.example" for i in range(12))
    assert "".join(parts) == f"v=spf1 mx {includes} ~all"


def test_the_checker_flags_a_missing_host_address(tmp_path: Path) -> None:
    """The checker is really this strict: an in-zone MX target needs an address."""
    data = rendered(FULL, "mail.example.com")["dns/example.com.zone"]
    stripped = b"".join(line for line in data.splitlines(keepends=True) if b" IN A" not in line)
    done = check(*wrap(tmp_path, "dns/example.com.zone", stripped))
    assert "example.com/MX 'mail.example.com' has no address records (A or AAAA)" in done.stdout


def test_the_checker_refuses_an_unsplit_long_txt_string(tmp_path: Path) -> None:
    """So splitting is needed, and the acceptance above proves it is done right."""
    data = rendered(FULL, "mail.example.com")["dns/long.example.zone"]
    joined = data.replace(b'" "', b"")
    done = check(*wrap(tmp_path, "dns/long.example.zone", joined))
    assert done.returncode == 1
    assert "long.example.zone:14: syntax error" in done.stdout
