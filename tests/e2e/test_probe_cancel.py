"""A probe's wait for a server that does not answer ends when its caller cancels it,
or when its caller says the server is gone (chasquid exited after its restart).

Real sockets on loopback: a port bound but not listening refuses connections,
so the probe retries until its deadline unless ``cancelled()`` says otherwise.
"""

from __future__ import annotations

import socket

import pytest

from gitops_mail.host.probe.smtp import probe
from gitops_mail.host.probe.spec import Check, Endpoint, ProbeSpec

pytestmark = [pytest.mark.netns]

NEVER = 600.0  # a deadline no test waits for: only a cancel ends these probes


def refusing_spec(sock: socket.socket) -> tuple[ProbeSpec, int]:
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    spec = ProbeSpec(
        hostname="mail.example.test",
        smtp=Endpoint("127.0.0.1", port),
        submission=Endpoint("127.0.0.1", port),
        submission_tls=None,
        fingerprints=frozenset(),
    )
    return spec, port


def test_a_cancelled_wait_ends_the_probe_and_says_so() -> None:
    asked: list[int] = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) >= 3

    with socket.socket() as sock:
        spec, port = refusing_spec(sock)

        result = probe(spec, deadline=NEVER, cancelled=cancelled)

    detail = (
        f"127.0.0.1:{port} did not answer ([Errno 111] Connection refused); the wait was cancelled"
    )
    assert (result.ok, result.cancelled) == (False, True)
    assert result.checks == (
        Check("smtp.connect", False, detail),
        Check("submission.connect", False, detail),
    )
    assert len(asked) in (3, 4)  # two endpoints ask; both stop at the first yes


def test_without_a_cancel_the_wait_lasts_until_the_deadline() -> None:
    with socket.socket() as sock:
        spec, port = refusing_spec(sock)

        result = probe(spec, deadline=0.3, cancelled=lambda: False)

    assert (result.ok, result.cancelled) == (False, False)
    assert result.checks[0].name == "smtp.connect"
    assert result.checks[0].detail.startswith(f"no answer from 127.0.0.1:{port} within 0.3 s (")


def test_a_server_gone_ends_the_wait_at_once_as_a_verdict() -> None:
    asked: list[int] = []

    def gone() -> str:
        asked.append(1)
        return "chasquid is not running" if len(asked) >= 2 else ""

    with socket.socket() as sock:
        spec, port = refusing_spec(sock)

        result = probe(spec, deadline=NEVER, gone=gone)

    detail = f"127.0.0.1:{port} did not answer ([Errno 111] Connection refused); "
    assert (result.ok, result.cancelled) == (False, False)  # a verdict on the server
    assert result.checks == (
        Check("smtp.connect", False, detail + "chasquid is not running"),
        Check("submission.connect", False, detail + "chasquid is not running"),
    )
    assert len(asked) in (2, 3)  # once it has said so, it is not asked again
