"""Prometheus metrics: what is observed is what a scrape of the real endpoint reads."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from gitops_mail.apply.transaction import ApplyFailed, Outcome, Superseded
from gitops_mail.core.dns.findings import CHECKS, STATUSES, Finding
from gitops_mail.core.plan.model import Action, Plan
from gitops_mail.daemon.metrics import (
    COMMIT_BACK_RESULTS,
    DRIFT_KINDS,
    RESULTS,
    Exporter,
    Metrics,
    parse_address,
)
from gitops_mail.errors import GitopsMailError, InvalidConfig
from gitops_mail.host.certs import installed
from gitops_mail.host.livefs import scan as livescan

REV = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
REV2 = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str | bytes) -> Samples:
    """Every sample of a text exposition, keyed by name and sorted labels."""
    if isinstance(text, bytes):
        text = text.decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(f"gitops_mail_{name}", tuple(sorted(labels.items())))]


def outcome(result: str, revision: str = REV, phases: dict[str, float] | None = None) -> Outcome:
    plan = Plan(revision[:7], revision[:7], (), ())
    return Outcome(revision, result, Action.NONE, plan, (), phases or {}, "")


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(process=False)


@pytest.fixture
def exporter(metrics: Metrics) -> Iterator[Exporter]:
    served = metrics.serve("127.0.0.1:0")
    yield served
    served.stop()


def scrape(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own http URL
        return response.headers["Content-Type"], response.read().decode()


def test_every_series_exists_at_zero_before_anything_happens(metrics: Metrics) -> None:
    found = samples(metrics.render())
    for result in RESULTS:
        assert value(found, "reconciles_total", result=result) == 0
    for result in COMMIT_BACK_RESULTS:
        assert value(found, "commit_back_total", result=result) == 0
    for kind in DRIFT_KINDS:
        assert value(found, "drift_files", kind=kind) == 0
    assert value(found, "reconcile_duration_seconds_count") == 0
    assert value(found, "last_success_timestamp_seconds") == 0


def test_reconciles_move_as_observed(metrics: Metrics) -> None:
    metrics.observe("applied", 0.3, REV, at=1_700_000_000.0)
    metrics.observe("unchanged", 0.02, REV, at=1_700_000_060.0)
    metrics.observe("error", 1.5)
    found = samples(metrics.render())
    assert value(found, "reconciles_total", result="applied") == 1
    assert value(found, "reconciles_total", result="unchanged") == 1
    assert value(found, "reconciles_total", result="error") == 1
    assert value(found, "reconciles_total", result="failed") == 0
    assert value(found, "reconcile_duration_seconds_count") == 3
    assert value(found, "reconcile_duration_seconds_sum") == pytest.approx(1.82)
    assert value(found, "reconcile_duration_seconds_bucket", le="0.025") == 1
    assert value(found, "reconcile_duration_seconds_bucket", le="0.5") == 2
    assert value(found, "reconcile_duration_seconds_bucket", le="+Inf") == 3
    assert value(found, "last_success_timestamp_seconds") == 1_700_000_060.0
    assert value(found, "applied_revision_info", revision="1a2b3c4") == 1


def test_the_applied_revision_is_one_series_that_moves(metrics: Metrics) -> None:
    metrics.set_live(REV)
    metrics.observe_outcome(outcome("applied", REV2, {"read": 10.0, "probe": 240.0}))
    found = samples(metrics.render())
    revisions = [labels for name, labels in found if name == "gitops_mail_applied_revision_info"]
    assert revisions == [(("revision", "9f8e7d6"),)]
    assert value(found, "reconcile_duration_seconds_sum") == pytest.approx(0.25)


def test_a_refused_certificate_is_one_series_while_it_is_refused(metrics: Metrics) -> None:
    metrics.set_refused(["mail.example.com", "smtp.example.com"])
    metrics.set_refused(["mail.example.com"])
    found = samples(metrics.render())
    refused = {labels: v for (name, labels), v in found.items() if "certificate_refused" in name}
    assert refused == {(("name", "mail.example.com"),): 1.0}
    metrics.set_refused([])
    assert "certificate_refused{" not in metrics.render().decode()


def test_failures_are_counted_by_kind_and_leave_the_last_success(metrics: Metrics) -> None:
    metrics.observe_outcome(outcome("applied"), 0.5)
    before = value(samples(metrics.render()), "last_success_timestamp_seconds")
    assert metrics.observe_failure(InvalidConfig("users: bad"), 0.01) == "invalid"
    assert metrics.observe_failure(ApplyFailed("probe failed; restored"), 2.0) == "failed"
    assert metrics.observe_failure(GitopsMailError("lock held"), 0.0) == "error"
    assert metrics.observe_failure(OSError("disk full"), 0.1) == "error"
    newer = Superseded("1a2b3c4 was not proven: 9f8e7d6 arrived", "9f8e7d6 is next", REV2)
    assert metrics.observe_failure(newer, 1.2) == "superseded"
    found = samples(metrics.render())
    assert [value(found, "reconciles_total", result=r) for r in RESULTS] == [1, 0, 1, 1, 2, 1]
    assert value(found, "last_success_timestamp_seconds") == before > 0
    assert value(found, "applied_revision_info", revision="1a2b3c4") == 1


def test_drift_of_a_real_config_dir(metrics: Metrics, tmp_path: Path) -> None:
    (tmp_path / "chasquid.conf").write_text("hostname: 'changed by hand'\n")
    (tmp_path / "mine.txt").write_text("an admin's own file\n")
    inventory = {"chasquid.conf": "0" * 64, "domains/example.com/users": "0" * 64}
    metrics.observe_drift(livescan.drift(tmp_path, inventory))
    found = samples(metrics.render())
    assert [value(found, "drift_files", kind=kind) for kind in DRIFT_KINDS] == [1, 1, 1]
    metrics.set_drift(0, 0, 0)
    found = samples(metrics.render())
    assert [value(found, "drift_files", kind=kind) for kind in DRIFT_KINDS] == [0, 0, 0]


def test_commit_back_results(metrics: Metrics) -> None:
    for result in ("rejected", "rejected", "pushed"):
        metrics.observe_commit_back(result)
    found = samples(metrics.render())
    counts = {r: value(found, "commit_back_total", result=r) for r in COMMIT_BACK_RESULTS}
    assert counts == {
        "committed": 0,
        "pushed": 1,
        "unchanged": 0,
        "superseded": 0,
        "rejected": 2,
        "failed": 0,
    }


def test_two_instances_share_nothing() -> None:
    one, two = Metrics(process=False), Metrics(process=False)
    one.observe("applied", 0.1, REV)
    assert value(samples(two.render()), "reconciles_total", result="applied") == 0


def test_process_metrics_come_with_the_registry() -> None:
    found = samples(Metrics().render())
    assert found[("process_resident_memory_bytes", ())] > 0


# --- no secret in a label -------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.observe("password=hunter2", 0.1),
        lambda m: m.observe_commit_back("hunter2"),
        lambda m: m.observe("applied", 0.1, "hunter2"),
        lambda m: m.set_live("https://u:hunter2@h/"),
    ],
)
def test_free_text_is_refused_as_a_label(metrics: Metrics, call: object) -> None:
    with pytest.raises(ValueError) as caught:
        call(metrics)  # type: ignore[operator]
    assert "hunter2" not in str(caught.value)
    assert b"hunter2" not in metrics.render()


def test_a_check_is_counted_by_check_and_status_and_nothing_else_is_a_label(
    metrics: Metrics,
) -> None:
    found = [
        Finding("mx", "example.com", "ok", "points at mail.example.com"),
        Finding("tls", "465 (TLS)", "error", "expired on 2020-01-01"),
        Finding("tls", "25 (STARTTLS)", "error", "expired on 2020-01-01"),
    ]
    metrics.observe_check(found, 0.25, at=1_700_000_000.0)
    text = metrics.render().decode()
    assert value(samples(text), "check_findings", check="tls", status="error") == 2
    assert value(samples(text), "check_findings", check="mx", status="ok") == 1
    assert value(samples(text), "check_findings", check="spf", status="error") == 0
    assert value(samples(text), "check_last_run_timestamp_seconds") == 1_700_000_000.0
    with pytest.raises(ValueError, match="unknown metric label value"):
        metrics.observe_check([Finding("whois", "x", "ok", "")], 0.1)


def test_no_secret_reaches_a_scrape(metrics: Metrics) -> None:
    secret = "hunter2-AUTH-PLAIN-AHVzZXI"
    metrics.observe_failure(InvalidConfig(f"users: salt {secret}"), 0.1)
    metrics.observe_failure(GitopsMailError(f"push to https://u:{secret}@h/ failed"), 0.1)
    metrics.observe_outcome(outcome("applied"), 0.2)
    metrics.observe_commit_back("failed")
    metrics.observe_check([Finding("dkim", f"s._domainkey {secret}", "error", secret)], 0.5)
    text = metrics.render().decode()
    assert secret not in text
    allowed = {*RESULTS, *COMMIT_BACK_RESULTS, *DRIFT_KINDS, *CHECKS, *STATUSES, "1a2b3c4"}
    for _, labels in samples(text):
        for key, label in labels:
            assert key == "le" or label in allowed, (key, label)


# --- the endpoint --------------------------------------------------------------


def test_a_scrape_of_the_served_endpoint(metrics: Metrics, exporter: Exporter) -> None:
    metrics.observe("applied", 0.3, REV, at=1_700_000_000.0)
    assert exporter.url == f"http://127.0.0.1:{exporter.port}/metrics"
    assert exporter.port > 0
    assert exporter.loopback
    content_type, body = scrape(exporter.url)
    assert content_type.startswith("text/plain; version=0.0.4")
    found = samples(body)
    assert value(found, "reconciles_total", result="applied") == 1
    assert value(found, "applied_revision_info", revision="1a2b3c4") == 1
    metrics.observe("failed", 2.0)
    assert value(samples(scrape(exporter.url)[1]), "reconciles_total", result="failed") == 1


def test_stop_closes_the_port(metrics: Metrics) -> None:
    served = metrics.serve("127.0.0.1:0")
    scrape(served.url)
    served()  # calling it stops it too
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", served.port), timeout=5).close()


def test_ipv6_loopback(metrics: Metrics) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        served = metrics.serve("[::1]:0")
    except GitopsMailError as error:
        pytest.skip(f"no IPv6 loopback here: {error}")
    try:
        assert served.url == f"http://[::1]:{served.port}/metrics"
        assert served.loopback
        assert "gitops_mail_reconciles_total" in scrape(served.url)[1]
    finally:
        served.stop()


def test_a_busy_port_is_a_clear_error(metrics: Metrics, exporter: Exporter) -> None:
    address = f"127.0.0.1:{exporter.port}"
    with pytest.raises(GitopsMailError) as caught:
        metrics.serve(address)
    assert caught.value.message == f"cannot serve metrics on {address}: Address already in use"
    assert caught.value.hint == (
        "choose a free port for metrics_address, or remove it to turn metrics off"
    )


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:9187", ("127.0.0.1", 9187)),
        ("[::1]:9187", ("::1", 9187)),
        ("localhost:0", ("localhost", 0)),
        ("0.0.0.0:9187", ("0.0.0.0", 9187)),  # noqa: S104 - the host settings may ask for it
        ("9187", ("127.0.0.1", 9187)),
    ],
)
def test_addresses(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [
        (":9187", "metrics_address ':9187' is not host:port"),
        ("::1:9187", "metrics_address '::1:9187' is not host:port"),
        ("localhost", "metrics_address 'localhost' is not host:port"),
        ("localhost:", "metrics_address 'localhost:' has no valid port"),
        ("localhost:http", "metrics_address 'localhost:http' has no valid port"),
        ("127.0.0.1:65536", "metrics_address '127.0.0.1:65536' has no valid port"),
    ],
)
def test_bad_addresses(address: str, message: str) -> None:
    with pytest.raises(InvalidConfig) as caught:
        parse_address(address)
    assert caught.value.message == message
    assert caught.value.hint == (
        "write it as host:port, e.g. metrics_address: 127.0.0.1:9187 or [::1]:9187"
    )


def _install(config_dir: Path, name: str, until: datetime) -> None:
    """``certs/<name>/fullchain.pem`` as apply installs it: a self-signed leaf for ``name``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(until - timedelta(days=90))
        .not_valid_after(until)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (config_dir / "certs" / name).mkdir(parents=True)
    chain = cert.public_bytes(serialization.Encoding.PEM)
    (config_dir / "certs" / name / "fullchain.pem").write_bytes(chain)


def test_days_to_expiry_of_each_installed_certificate(
    metrics: Metrics, exporter: Exporter, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    _install(tmp_path, "mail.example.com", now + timedelta(days=10, hours=1))
    _install(tmp_path, "old.example.com", now - timedelta(days=2))
    (tmp_path / "certs" / "broken").mkdir()  # no chain in it: not a certificate, not a series
    before = time.time()

    metrics.observe_certificates(installed.every_leaf(tmp_path))

    found = samples(scrape(exporter.url)[1])
    series = "gitops_mail_certificate_expiry_days"
    days = found[(series, (("name", "mail.example.com"),))]
    elapsed = (time.time() - before) / 86400
    assert 10.04 - elapsed - 0.001 <= days <= 10.042 + 0.001
    assert -2.001 <= found[(series, (("name", "old.example.com"),))] <= -1.999
    names = {labels for name, labels in found if name.endswith("certificate_expiry_days")}
    assert names == {(("name", "mail.example.com"),), (("name", "old.example.com"),)}
    metrics.observe_certificates([])  # none installed any more: no series left
    assert "certificate_expiry_days{" not in metrics.render().decode()


def test_each_daemon_pass_exports_the_certificates_installed_then(tmp_path: Path) -> None:
    from gitops_mail.daemon.afterpass import build_hooks  # noqa: PLC0415 - the daemon's side
    from gitops_mail.daemon.status import PassReport  # noqa: PLC0415
    from gitops_mail.host.settings import ChasquidSettings, HostSettings  # noqa: PLC0415

    metrics = Metrics(process=False)
    config_dir = tmp_path / "etc-chasquid"
    settings = HostSettings(
        path=tmp_path / "host.yaml",
        repo=tmp_path / "repo.git",
        state_dir=tmp_path / "state",
        chasquid=ChasquidSettings(config_dir=config_dir),
    )
    on_pass = build_hooks(settings, metrics).on_pass
    assert on_pass is not None
    _install(config_dir, "mail.example.com", datetime.now(UTC) + timedelta(days=30))

    on_pass(PassReport(REV, "applied", "applied", False, time.time(), 12.0))

    found = samples(metrics.render())
    days = found[("gitops_mail_certificate_expiry_days", (("name", "mail.example.com"),))]
    assert 29.99 <= days <= 30.0


def test_the_endpoint_is_prometheus_clients_own_server(exporter: Exporter) -> None:
    """No hand-written HTTP server: prometheus_client serves, one thread per scrape."""
    from prometheus_client.exposition import ThreadingWSGIServer  # noqa: PLC0415

    assert isinstance(exporter.server, ThreadingWSGIServer)
    assert exporter.server.daemon_threads  # a stuck scrape never holds the daemon up
    content_type, _ = scrape(exporter.url)
    assert content_type.startswith("text/plain")
