"""The daemon runs ``gitops-mail check`` every ``check_interval`` and reports only changes:
one ``check.changed`` log event per change, the ``check`` entry of ``daemon.json`` (shown by
``gitops-mail status``) and the metrics, however many runs see the same findings."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import pytest

pytest.register_assert_rewrite("apply_fixtures", "check_fixtures", "daemon_fixtures")

from apply_fixtures import free_port, poll  # noqa: E402
from check_fixtures import Published, zone_line  # noqa: E402
from daemon_fixtures import StartDaemon  # noqa: E402

pytest_plugins = ["apply_fixtures", "dns_fixtures", "check_fixtures", "daemon_fixtures"]

PROBLEM = (
    "error dmarc example.test: p=none, expected p=quarantine (the authoritative servers agree)"
)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http
        return str(response.read().decode())


def last_run(url: str) -> float:
    """When the last check ended, from the daemon's metrics."""
    for line in scrape(url).splitlines():
        if line.startswith("gitops_mail_check_last_run_timestamp_seconds "):
            return float(line.split()[1])
    raise AssertionError("no check metric")


def test_the_daemon_checks_periodically_and_reports_only_changes(
    published: Callable[..., Published], start_daemon: StartDaemon
) -> None:
    host = published()
    box = host.box
    port = free_port(set())
    with box.host_file.open("a") as settings:
        settings.write(f"check_interval: 0.3\nmetrics_address: 127.0.0.1:{port}\n")
    daemon = start_daemon(box)
    daemon.ready()
    url = f"http://127.0.0.1:{port}/metrics"
    poll(lambda: daemon.status().get("check"), 20, "the first check")
    assert daemon.status()["check"]["errors"] == 0

    dmarc = zone_line(host.served_zone, "_dmarc", "TXT")
    host.serve(zone=host.served_zone.replace(dmarc, dmarc.replace("quarantine", "none")))
    poll(lambda: daemon.status()["check"]["errors"] == 1, 20, "the DMARC error")
    seen: set[float] = set()

    def three_more_runs() -> bool:
        seen.add(last_run(url))
        return len(seen) >= 3

    poll(three_more_runs, 20, "more runs seeing the same error")
    assert daemon.status()["check"]["problems"] == [PROBLEM]

    host.serve()
    poll(lambda: daemon.status()["check"]["errors"] == 0, 20, "the DMARC fixed")
    changed = daemon.events("check.changed")
    assert [(e["level"], e["errors"], e["new"], e["fixed"]) for e in changed] == [
        ("info", 0, [], []),
        ("error", 1, [PROBLEM], []),
        ("info", 0, [], [PROBLEM.removeprefix("error ")]),
    ]
    status = box.gm("status")
    assert "check:    all good (since " in status.out
    assert 'gitops_mail_check_findings{check="dmarc",status="ok"} 1.0' in scrape(url)
    assert daemon.stop() == 0
