"""Check benchmark: ``gitops-mail check`` of 10 domains against a local DNS server.

A conf repo with 10 domains (DKIM, SPF with an include, DMARC, MTA-STS and
TLS-RPT each), two server addresses and the zones gitops-mail renders for
them, each with its DKIM record, committed as ``dns/<domain>.zone``; NSD on
127.0.0.1:53 (inside the private netns, where it is the resolver) serves
those zones and the two reverse zones. ``gitops-mail check --repo`` asks every
record, evaluates SPF for both addresses (and once more for the lookup
count), and must find nothing wrong. The certificates are not part of it
(``--repo`` checks DNS only): the apply suite times what talks to chasquid.
"""

from __future__ import annotations

import base64
import ipaddress
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.core import _git
from bench.harness import GITOPS_MAIL, row
from gitops_mail.core.dns.zone import render_zones, txt_strings
from gitops_mail.core.snapshot import Entry, Snapshot
from gitops_mail.core.state import load_state

DOMAINS = 10
ADDRESSES = ("192.0.2.7", "2001:db8::7")
NSD_CONF = """\
server:
  ip-address: 127.0.0.1
  port: 53
  username: ""
  chroot: ""
  zonesdir: "{root}"
  database: ""
  zonelistfile: "{root}/zone.list"
  xfrdfile: "{root}/xfrd.state"
  xfrdir: "{root}"
  pidfile: "{root}/nsd.pid"
  logfile: "{root}/nsd.log"
  server-count: 1
  rrl-ratelimit: 0
"""
WRAP = """\
$ORIGIN {origin}.
$TTL 300
@ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 300
@ IN NS ns.{origin}.
ns IN A 127.0.0.1
$INCLUDE {records} {origin}.
"""


def _manifest() -> str:
    lines = ["version: 1", "server:", "  ipv4: [192.0.2.7]", '  ipv6: ["2001:db8::7"]', "domains:"]
    for i in range(DOMAINS):
        d = f"d{i}.example"
        lines += [
            f"  {d}:",
            "    dkim: {selectors: [s2026]}",
            f'    spf: {{mx: true, include: [_spf.{d}], all: "-all"}}',
            f'    dmarc: {{p: reject, rua: ["mailto:dmarc@{d}"]}}',
            "    mta_sts: {mode: enforce}",
            f'    tls_rpt: {{rua: ["mailto:tls@{d}"]}}',
        ]
    return "\n".join(lines) + "\n"


def _dkim_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def _repo(root: Path) -> tuple[Path, dict[str, str]]:
    """The conf repo and, by origin, the zone text the DNS provider serves."""
    files = {
        "gitops-mail.yaml": _manifest(),
        "chasquid/chasquid.conf": 'hostname: "mail.d0.example"\n',
    }
    state = load_state(Snapshot({k: Entry(v.encode()) for k, v in files.items()}, "bench"))
    dkim = f"s2026._domainkey IN TXT {txt_strings(f'v=DKIM1; k=rsa; p={_dkim_key()}'.encode())}\n"
    served = {}
    for path, data in render_zones(state).items():
        committed = data.decode() + dkim
        files[path] = committed
        origin = path.removeprefix("dns/").removesuffix(".zone")
        served[origin] = committed + '_spf IN TXT "v=spf1 ip6:2001:db8::/32 -all"\n'
    for address in ADDRESSES:
        labels = ipaddress.ip_address(address).reverse_pointer.split(".")
        cut = 1 if ipaddress.ip_address(address).version == 4 else 16
        served[".".join(labels[cut:])] = f"{'.'.join(labels[:cut])} IN PTR mail.d0.example.\n"
    repo = root / "repo"
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    _git(root, "init", "-q", "-b", "main", str(repo))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "ten domains")
    return repo, served


def _start_nsd(root: Path, zones: dict[str, str]) -> subprocess.Popen[bytes]:
    conf = NSD_CONF.format(root=root)
    for origin, text in zones.items():
        (root / f"{origin}.records").write_text(text)
        (root / f"{origin}.db").write_text(
            WRAP.format(origin=origin, records=root / f"{origin}.records")
        )
        conf += f'zone:\n  name: "{origin}"\n  zonefile: "{root}/{origin}.db"\n'
    (root / "nsd.conf").write_text(conf)
    nsd = subprocess.Popen(["nsd", "-d", "-c", str(root / "nsd.conf")], stdin=subprocess.DEVNULL)
    import dns.message  # noqa: PLC0415 - the bench's own readiness probe
    import dns.query  # noqa: PLC0415

    deadline = time.monotonic() + 10
    while True:
        try:
            dns.query.udp(dns.message.make_query("d9.example.", "SOA"), "127.0.0.1", timeout=0.2)
            return nsd
        except Exception:
            if time.monotonic() > deadline or nsd.poll() is not None:
                raise RuntimeError((root / "nsd.log").read_text()) from None


def run(runs: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="gitops-mail-bench-check-") as tmp:
        root = Path(tmp)
        repo, zones = _repo(root)
        (root / "nsd").mkdir()
        nsd = _start_nsd(root / "nsd", zones)
        try:
            argv = [GITOPS_MAIL, "check", "--repo", str(repo), "--format", "json"]
            rows = [row(f"`check` of {DOMAINS} domains, local NSD", "<= 2000 ms", argv, runs)]
        finally:
            nsd.send_signal(signal.SIGTERM)
            nsd.wait(timeout=30)
    return {"rows": rows}
