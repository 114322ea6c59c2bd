"""A real DNS server for the end-to-end tests: NSD on loopback (a pytest plugin).

Use it with ``pytest_plugins = ["dns_fixtures"]`` in a test module under
``tests/e2e`` (the namespace's ``/etc/resolv.conf`` says ``nameserver
127.0.0.1``, so a server on 127.0.0.1:53 is everyone's resolver there):

    def test_x(dns_server):
        dns = dns_server()                                  # NSD on 127.0.0.1:53
        dns.set_zone("example.test", render_zones(state)["dns/example.test.zone"])
        dns.set_zone(*reverse_zone("192.0.2.7", "mail.example.test"))
        assert dns.ask("example.test", "MX") == ["10 mail.example.test."]

- ``dns_server(address="127.0.0.1", *, ns_address=None) -> DnsServer``: starts
  ``/usr/sbin/nsd`` in the foreground on ``address``:53, stopped at teardown.
  Each zone gets the SOA and NS a DNS provider would add around a
  ``dns/<domain>.zone`` file: its NS ``ns-gitops-test.<zone>`` has the address
  ``ns_address`` (default: ``address``), so a second server started with
  other data on another loopback address (127.0.0.2) can play the zone's
  authoritative server while the first plays a resolver still holding old
  answers ("not propagated yet").
- ``DnsServer.set_zone(origin, records)`` serves ``records`` (zone text as
  gitops-mail writes it: ``$ORIGIN``/``$TTL`` lines allowed, no SOA or NS) as
  the zone ``origin``, adding it if new; it returns once the server answers
  with the new data (the SOA serial is polled, no fixed sleep).
  ``remove_zone(origin)``, ``ask(name, rtype) -> [rdata text]``, ``log_text()``.
- ``reverse_zone(address, hostname) -> (origin, records)``: a reverse zone
  (/24 for IPv4, /64 for IPv6) whose only record is the address's PTR.
"""

from __future__ import annotations

import ipaddress
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from support.wait import poll

NSD = "/usr/sbin/nsd"
NSD_CONTROL = "/usr/sbin/nsd-control"
NS_LABEL = "ns-gitops-test"
PATTERN = "gitops-test"
START_TIMEOUT = 60.0  # seconds: only bounds a server that never starts
STEADY = 20  # answers in a row that make a reload done (see DnsServer._steady)
TTL = 300

CONFIG = """\
server:
  ip-address: {address}
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
  verbosity: 1
  hide-version: yes
  rrl-ratelimit: 0
remote-control:
  control-enable: yes
  control-interface: {root}/nsd.ctl
pattern:
  name: "{pattern}"
  zonefile: "{root}/zones/%s.db"
"""

ZONE = """\
$ORIGIN {origin}.
$TTL {ttl}
@ IN SOA {ns}.{origin}. hostmaster.{origin}. {serial} 3600 600 86400 {ttl}
@ IN NS {ns}.{origin}.
{ns} IN {ns_type} {ns_address}
$INCLUDE {records} {origin}.
"""


@dataclass(eq=False)
class DnsServer:
    """One NSD process serving the zones given to ``set_zone``."""

    address: str
    ns_address: str
    root: Path
    process: subprocess.Popen[bytes] | None = None
    serials: dict[str, int] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.root / "nsd.conf"

    def start(self) -> None:
        (self.root / "zones").mkdir(parents=True, exist_ok=True)
        self.config.write_text(CONFIG.format(address=self.address, root=self.root, pattern=PATTERN))
        self.process = subprocess.Popen(
            [NSD, "-d", "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=(self.root / "nsd.out").open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while self._query(".", "SOA") is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nsd on {self.address} did not start:\n{self.log_text()}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_text(self) -> str:
        parts = [self.root / "nsd.out", self.root / "nsd.log"]
        return "".join(p.read_text(errors="replace") for p in parts if p.exists())

    def set_zone(self, origin: str, records: str | bytes) -> None:
        """Serve ``records`` as zone ``origin`` (added if new); wait until it is served."""
        origin = origin.rstrip(".").lower()
        serial = self.serials.get(origin, 0) + 1
        body = records if isinstance(records, bytes) else records.encode()
        (self.root / "zones" / f"{origin}.records").write_bytes(body)
        ns_type = "A" if ipaddress.ip_address(self.ns_address).version == 4 else "AAAA"
        (self.root / "zones" / f"{origin}.db").write_text(
            ZONE.format(
                origin=origin,
                ttl=TTL,
                ns=NS_LABEL,
                serial=serial,
                ns_type=ns_type,
                ns_address=self.ns_address,
                records=self.root / "zones" / f"{origin}.records",
            )
        )
        if origin in self.serials:
            self._control("reload", origin)
        else:
            self._control("addzone", origin, PATTERN)
        self.serials[origin] = serial
        poll(lambda: self._steady(lambda: self._serial(origin) == serial), 10, f"{origin} served")

    def remove_zone(self, origin: str) -> None:
        origin = origin.rstrip(".").lower()
        self._control("delzone", origin)
        del self.serials[origin]
        poll(lambda: self._steady(lambda: self._refused(origin)), 10, f"{origin} no longer served")

    def ask(self, name: str, rtype: str) -> list[str]:
        """The records this server answers for ``name`` (rdata as text, sorted)."""
        response = self._query(name, rtype)
        assert response is not None, f"nsd on {self.address} did not answer"
        wanted = dns.rdatatype.from_text(rtype)
        rrsets = [rrset for rrset in response.answer if rrset.rdtype == wanted]
        return sorted(r.to_text() for rrset in rrsets for r in rrset)

    def _serial(self, origin: str) -> int | None:
        response = self._query(origin + ".", "SOA")
        if response is None or response.rcode() != dns.rcode.NOERROR:
            return None
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.SOA:
                return int(rrset[0].serial)
        return None

    @staticmethod
    def _steady(answered: Callable[[], bool]) -> bool:
        """``answered()`` holds for STEADY queries in a row.

        A reload starts new server processes while the old one may still
        answer the queries already queued on the shared socket: one new
        answer does not mean the old data is gone.
        """
        return all(answered() for _ in range(STEADY))

    def _refused(self, origin: str) -> bool:
        response = self._query(origin + ".", "SOA")
        return response is not None and response.rcode() == dns.rcode.REFUSED

    def _query(self, name: str, rtype: str) -> dns.message.Message | None:
        try:
            return dns.query.udp(dns.message.make_query(name, rtype), self.address, timeout=0.5)
        except (dns.exception.Timeout, OSError):
            return None

    def _control(self, *command: str) -> None:
        done = subprocess.run(
            [NSD_CONTROL, "-c", str(self.config), *command],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        said = done.stdout + done.stderr
        if done.returncode != 0 or said.startswith("error"):
            raise RuntimeError(f"nsd-control {' '.join(command)}: {said}\n{self.log_text()}")


def reverse_zone(address: str, hostname: str) -> tuple[str, str]:
    """(origin, records): the reverse zone holding ``address``'s PTR to ``hostname``."""
    labels = ipaddress.ip_address(address).reverse_pointer.split(".")
    host_labels = 1 if ipaddress.ip_address(address).version == 4 else 16
    owner, origin = ".".join(labels[:host_labels]), ".".join(labels[host_labels:])
    return origin, f"{owner} IN PTR {hostname.rstrip('.')}.\n"


@pytest.fixture
def dns_server(tmp_path: Path) -> Iterator[Callable[..., DnsServer]]:
    """``dns_server(address="127.0.0.1", *, ns_address=None) -> DnsServer`` on address:53."""
    started: list[DnsServer] = []

    def start(address: str = "127.0.0.1", *, ns_address: str | None = None) -> DnsServer:
        server = DnsServer(address, ns_address or address, tmp_path / f"nsd-{address}")
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
