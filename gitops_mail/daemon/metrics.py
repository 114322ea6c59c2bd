"""Prometheus metrics of the daemon, in a registry of their own (no global state).

    metrics = Metrics()
    metrics.observe_outcome(outcome, duration_s)    # or observe_failure(error, ...)
    exporter = metrics.serve("127.0.0.1:9187")     # host settings' metrics_address
    ...
    exporter.stop()

Every label value comes from a fixed set, is a short hexadecimal revision or
a certificate's name (a DNS name, ``certificate_expiry_days``), so no secret
(nor any text from a commit or an error) can reach a label.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest, start_wsgi_server
from prometheus_client.process_collector import ProcessCollector

from gitops_mail.core.dns.findings import CHECKS
from gitops_mail.core.dns.findings import STATUSES as CHECK_STATUSES
from gitops_mail.errors import GitopsMailError, InvalidConfig

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from gitops_mail.apply.transaction import Outcome
    from gitops_mail.core.dns.findings import Finding
    from gitops_mail.core.plan.certs import CertFacts
    from gitops_mail.host.livefs.scan import Drift

NAMESPACE = "gitops_mail"
RESULTS = ("applied", "unchanged", "failed", "invalid", "error", "superseded")
SUCCESSES = ("applied", "unchanged")
COMMIT_BACK_RESULTS = ("committed", "pushed", "unchanged", "superseded", "rejected", "failed")
DRIFT_KINDS = ("modified", "missing", "foreign")

SHORT = 7  # hex digits of a revision in a label, as in `git log --oneline`
# A reconcile with nothing to do takes milliseconds; one with probes, up to the probe deadline.
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_HEX = re.compile(r"[0-9a-f]{4,64}")
_CERT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")  # a DNS name, as the manifest's
DAY_S = 86400.0
_ADDRESS_HINT = "write it as host:port, e.g. metrics_address: 127.0.0.1:9187 or [::1]:9187"


class Metrics:
    """The daemon's counters and gauges; ``render()`` is the text a scrape returns."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reconciles = Counter(
            "reconciles", "Reconcile passes by result.", ["result"], namespace=NAMESPACE, registry=r
        )
        self.duration = Histogram(
            "reconcile_duration_seconds",
            "Wall time of a reconcile pass, lock wait included.",
            namespace=NAMESPACE,
            buckets=BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "last_success_timestamp_seconds",
            "Unix time of the last reconcile that ended applied or unchanged.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.revision = Info(
            "applied_revision", "The revision live on this host.", namespace=NAMESPACE, registry=r
        )
        self.drift = Gauge(
            "drift_files",
            "Files of the chasquid config dir that differ from the last apply.",
            ["kind"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.commit_back = Counter(
            "commit_back",
            "Commit-back attempts by result.",
            ["result"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.certificate_refused = Gauge(
            "certificate_refused",
            "1 while the source's certificate NAME is refused and the live one still served.",
            ["name"],
            namespace=NAMESPACE,
            registry=r,
        )
        self._refused: set[str] = set()
        self._check_metrics(r)
        self.certificates = _CertificateExpiry()
        r.register(self.certificates)
        for result in RESULTS:
            self.reconciles.labels(result=result)
        for result in COMMIT_BACK_RESULTS:
            self.commit_back.labels(result=result)
        for kind in DRIFT_KINDS:
            self.drift.labels(kind=kind)
        if process:
            ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu seconds...

    def observe(
        self,
        result: str,
        duration_s: float,
        revision: str | None = None,
        *,
        at: float | None = None,
    ) -> None:
        """One reconcile pass ended with ``result`` (one of ``RESULTS``)."""
        self.reconciles.labels(result=_known(result, RESULTS)).inc()
        self.duration.observe(max(duration_s, 0.0))
        if result in SUCCESSES:
            self.last_success.set(time.time() if at is None else at)
            if revision is not None:
                self.set_live(revision)

    def observe_outcome(self, outcome: Outcome, duration_s: float | None = None) -> None:
        """A pass that returned: applied or unchanged. The duration defaults to its phases."""
        if duration_s is None:
            duration_s = sum(outcome.phases.values()) / 1000
        self.observe(outcome.result, duration_s, outcome.revision)

    def observe_failure(self, error: BaseException, duration_s: float) -> str:
        """A pass that raised: ``invalid``, ``failed`` (server restored), ``superseded``
        (a newer revision ended its probe wait) or ``error``.

        Returns the result counted, for the daemon's own log line.
        """
        from gitops_mail.apply.transaction import (  # noqa: PLC0415 - heavy; the daemon has it
            ApplyFailed,
            Superseded,
        )

        result = "error"
        if isinstance(error, InvalidConfig):
            result = "invalid"
        elif isinstance(error, ApplyFailed):
            result = "failed"
        elif isinstance(error, Superseded):
            result = "superseded"
        self.observe(result, duration_s)
        return result

    def set_refused(self, names: Iterable[str]) -> None:
        """The certificates refused now (``apply.certificates.refusals``); others are dropped."""
        wanted = set(names)
        for name in self._refused - wanted:
            self.certificate_refused.remove(name)
        for name in wanted:
            self.certificate_refused.labels(name=name).set(1)
        self._refused = wanted

    def set_live(self, revision: str | None) -> None:
        """The revision the live config dir holds (at start: from the state store)."""
        self.revision.info({"revision": short(revision) if revision else ""})

    def observe_drift(self, drift: Drift) -> None:
        self.set_drift(len(drift.modified), len(drift.missing), len(drift.foreign))

    def set_drift(self, modified: int, missing: int, foreign: int) -> None:
        for kind, count in zip(DRIFT_KINDS, (modified, missing, foreign), strict=True):
            self.drift.labels(kind=kind).set(count)

    def observe_commit_back(self, result: str) -> None:
        """One commit-back attempt ended with ``result`` (one of ``COMMIT_BACK_RESULTS``)."""
        self.commit_back.labels(result=_known(result, COMMIT_BACK_RESULTS)).inc()

    def observe_certificates(self, installed: Iterable[CertFacts]) -> None:
        """The certificates installed now: their days to expiry are exported at each scrape."""
        self.certificates.expiry = {
            c.name: c.not_after.timestamp() for c in installed if _CERT_NAME.fullmatch(c.name)
        }

    def _check_metrics(self, r: CollectorRegistry) -> None:
        self.check_findings = Gauge(
            "check_findings",
            "Findings of the last live check (gitops-mail check) by check and status.",
            ["check", "status"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.check_last_run = Gauge(
            "check_last_run_timestamp_seconds",
            "Unix time the last live check ended.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.check_duration = Gauge(
            "check_duration_seconds",
            "Wall time of the last live check.",
            namespace=NAMESPACE,
            registry=r,
        )
        for check in CHECKS:
            for status in CHECK_STATUSES:
                self.check_findings.labels(check=check, status=status)

    def observe_check(
        self, findings: Sequence[Finding], duration_s: float, *, at: float | None = None
    ) -> None:
        """A live check ended with these findings."""
        counted = {(c, s): 0 for c in CHECKS for s in CHECK_STATUSES}
        for finding in findings:
            key = (_known(finding.check, CHECKS), _known(finding.status, CHECK_STATUSES))
            counted[key] += 1
        for (check, status), count in counted.items():
            self.check_findings.labels(check=check, status=status).set(count)
        self.check_duration.set(max(duration_s, 0.0))
        self.check_last_run.set(time.time() if at is None else at)

    def render(self) -> bytes:
        """The Prometheus text exposition format (version 0.0.4)."""
        return generate_latest(self.registry)

    def serve(self, address: str) -> Exporter:
        """Serve ``/metrics`` on ``address`` (``host:port``) from a daemon thread:
        prometheus_client's own WSGI server (a thread per scrape, IPv6 by the
        address, no access log on the daemon's stderr).

        Any address the host settings name is honoured; port 0 picks a free one.
        """
        host, port = parse_address(address)
        try:
            server, thread = start_wsgi_server(port, host, self.registry)
        except OSError as error:
            raise GitopsMailError(
                f"cannot serve metrics on {address}: {error.strerror or error}",
                "choose a free port for metrics_address, or remove it to turn metrics off",
            ) from None
        return Exporter(host, server.server_port, server, thread)


class _CertificateExpiry:
    """``gitops_mail_certificate_expiry_days{name}``: days left, counted when scraped."""

    def __init__(self) -> None:
        self.expiry: dict[str, float] = {}  # name -> not_after, Unix time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            f"{NAMESPACE}_certificate_expiry_days",
            "Days until each installed certificate expires (negative: expired).",
            labels=["name"],
        )
        now = time.time()
        for name, until in sorted(self.expiry.items()):
            family.add_metric([name], round((until - now) / DAY_S, 3))
        yield family


@dataclass(frozen=True)
class Exporter:
    """A running metrics endpoint; ``stop()`` (or calling it) shuts it down."""

    host: str
    port: int
    server: WSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    __call__ = stop


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` as (host, port); a bare port means 127.0.0.1."""
    text = address.strip()
    if text.isdigit():
        host, port = "127.0.0.1", text
    else:
        host, sep, port = text.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not sep or not host or (":" in host and not text.startswith("[")):
            raise InvalidConfig(f"metrics_address {address!r} is not host:port", _ADDRESS_HINT)
    if not port.isdigit() or int(port) > 65535:
        raise InvalidConfig(f"metrics_address {address!r} has no valid port", _ADDRESS_HINT)
    return host, int(port)


def short(revision: str) -> str:
    """The first ``SHORT`` hex digits of a revision; anything else is refused."""
    if not _HEX.fullmatch(revision):
        raise ValueError("a revision label must be a hexadecimal object name")
    return revision[:SHORT]


def _known(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"unknown metric label value (allowed: {', '.join(allowed)})")
    return value
