"""The live probe against the real chasquid 1.11: what passes, what fails and why."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gitops_mail.host.probe.smtp import probe
from gitops_mail.host.probe.spec import Check, Endpoint, ProbeSpec, leaf_fingerprint

if TYPE_CHECKING:
    from conftest import ChasquidServer, ConfigDir

pytestmark = [pytest.mark.netns, pytest.mark.chasquid]

USER = "ana@example.test"
LATE_START = 60.0  # the probe deadline while a server starts: done when it answers
ALL_CHECKS = [
    "smtp.banner",
    "smtp.ehlo",
    "smtp.certificate",
    "submission.banner",
    "submission.ehlo",
    "submission.auth_before_tls",
    "submission.certificate",
    "submission.auth",
    "submission_tls.certificate",
    "submission_tls.auth",
]
ROLES = ("smtp", "submission", "submission_tls")


@pytest.fixture
def config(tmp_path: Path, make_config_dir: Callable[..., ConfigDir]) -> ConfigDir:
    """ana@example.test, aliases info@ and ñandú@ -> ana, and catchall.test: all of it to ana."""
    made = make_config_dir(tmp_path, domains=("example.test", "catchall.test"), users={USER: "pw"})
    (made.path / "domains/example.test/aliases").write_text(f"info: {USER}\nñandú: {USER}\n")
    (made.path / "domains/catchall.test/aliases").write_text(f"*: {USER}\n")
    return made


@pytest.fixture
def server(config: ConfigDir, chasquid_server: Callable[..., ChasquidServer]) -> ChasquidServer:
    return chasquid_server(config)


def spec_for(server: ChasquidServer, config: ConfigDir, **changes: Any) -> ProbeSpec:
    """Every endpoint of ``server``, the certificate on disk, no recipients."""

    def at(port: str) -> Endpoint:
        return Endpoint("127.0.0.1", server.ports[port])

    fullchain = (config.path / "certs" / config.hostname / "fullchain.pem").read_bytes()
    spec = ProbeSpec(
        hostname=config.hostname,
        smtp=at("smtp"),
        submission=at("submission"),
        submission_tls=at("submission_over_tls"),
        fingerprints=frozenset({leaf_fingerprint(fullchain)}),
    )
    return dataclasses.replace(spec, **changes)


def by_name(checks: tuple[Check, ...]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def test_good_server_passes_every_check(server: ChasquidServer, config: ConfigDir) -> None:
    result = probe(spec_for(server, config))

    assert result.ok, result.failures()
    assert [check.name for check in result.checks] == ALL_CHECKS
    assert result.failures() == ()
    checks = by_name(result.checks)
    fingerprint = hashlib.sha256(config.cert.leaf_der).hexdigest()
    assert checks["smtp.banner"].detail == 'banner names "mail.example.test"'
    assert checks["submission.ehlo"].detail == 'EHLO reply names "mail.example.test"'
    for role in ROLES:
        detail = f"serves the certificate on disk (sha256 {fingerprint})"
        assert checks[f"{role}.certificate"].detail == detail
    assert checks["submission.auth"].detail == "AUTH PLAIN offered in TLS"
    assert checks["submission_tls.auth"].detail == "AUTH PLAIN offered in TLS"
    assert 0 < result.duration_ms < 10_000


def test_auth_is_not_offered_before_starttls_on_submission(
    server: ChasquidServer, config: ConfigDir
) -> None:
    result = probe(spec_for(server, config, smtp=None, submission_tls=None))

    assert by_name(result.checks)["submission.auth_before_tls"] == Check(
        "submission.auth_before_tls", True, "no AUTH before STARTTLS"
    )
    assert result.ok


def test_wrong_hostname_fails_naming_both(server: ChasquidServer, config: ConfigDir) -> None:
    result = probe(spec_for(server, config, hostname="wrong.example.test"))

    assert not result.ok
    assert result.failures() == (
        Check(
            "smtp.banner", False, 'banner names "mail.example.test", expected "wrong.example.test"'
        ),
        Check(
            "smtp.ehlo",
            False,
            'EHLO reply names "mail.example.test", expected "wrong.example.test"',
        ),
        Check(
            "submission.banner",
            False,
            'banner names "mail.example.test", expected "wrong.example.test"',
        ),
        Check(
            "submission.ehlo",
            False,
            'EHLO reply names "mail.example.test", expected "wrong.example.test"',
        ),
    )


def test_certificate_not_on_disk_fails(server: ChasquidServer, config: ConfigDir) -> None:
    other = "0" * 64
    result = probe(spec_for(server, config, fingerprints=frozenset({other})))

    served = hashlib.sha256(config.cert.leaf_der).hexdigest()
    detail = f"serves certificate sha256 {served}, which is not on disk (on disk: {other})"
    assert result.failures() == tuple(Check(f"{role}.certificate", False, detail) for role in ROLES)
    assert not result.ok


def test_any_certificate_on_disk_may_match(server: ChasquidServer, config: ConfigDir) -> None:
    real = hashlib.sha256(config.cert.leaf_der).hexdigest()
    result = probe(spec_for(server, config, fingerprints=frozenset({"0" * 64, real})))

    assert result.ok, result.failures()


def test_server_not_running_fails_at_the_deadline(
    server: ChasquidServer, config: ConfigDir
) -> None:
    server.stop()
    spec = spec_for(server, config)

    result = probe(spec, deadline=1.0)  # it fails however slow the machine: 1 s is plenty

    assert not result.ok
    assert [check.name for check in result.checks] == [
        "smtp.connect",
        "submission.connect",
        "submission_tls.connect",
    ]
    for check, ep in zip(
        result.checks, (spec.smtp, spec.submission, spec.submission_tls), strict=True
    ):
        pattern = (
            rf"no answer from {ep} within 1 s \(\d+ attempts\): \[Errno 111\] Connection refused"
        )
        assert re.fullmatch(pattern, check.detail), check.detail


def test_port_that_never_answers_fails_within_the_deadline() -> None:
    """A listener that never accepts: the kernel completes the connect, no banner ever comes."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        ep = Endpoint("127.0.0.1", listener.getsockname()[1])
        spec = ProbeSpec("mail.example.test", ep, None, None, frozenset())

        result = probe(spec, deadline=0.5)

    # The banner wait ends at the deadline (one attempt), or, on a machine so busy
    # that the probe's thread started after it, no attempt was made at all.
    assert result.checks in (
        (Check("smtp.connect", False, f"no answer from {ep} within 0.5 s (1 attempt): timed out"),),
        (
            Check(
                "smtp.connect",
                False,
                f"no answer from {ep} within 0.5 s (0 attempts): the probe deadline passed",
            ),
        ),
    )


def test_server_starting_late_is_waited_for(server: ChasquidServer, config: ConfigDir) -> None:
    server.stop()
    refused = threading.Event()  # the probe found no server and asked whether to go on
    errors: list[BaseException] = []

    def start_once_refused() -> None:
        refused.wait()
        try:
            server.start()
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    def cancelled() -> bool:  # asked after each attempt that got no answer
        refused.set()
        return False

    starter = threading.Thread(target=start_once_refused)
    starter.start()
    try:
        result = probe(spec_for(server, config), deadline=LATE_START, cancelled=cancelled)
    finally:
        refused.set()
        starter.join()

    assert errors == []
    assert result.ok, result.failures()


def test_recipients_accepted_and_rejected_as_expected(
    server: ChasquidServer, config: ConfigDir
) -> None:
    rcpt = (
        (USER, True),
        ("info@example.test", True),  # alias
        ("anyone@catchall.test", True),  # catch-all
        ("nobody@example.test", False),  # unknown local address
        ("someone@remote.test", False),  # relaying needs AUTH
        ("a.na+tag@example.test", True),  # dots dropped, suffix stripped
        ("ñandú@example.test", True),  # UTF-8 (SMTPUTF8)
    )
    result = probe(spec_for(server, config, rcpt=rcpt))

    assert result.ok, result.failures()
    rcpt_checks = [check for check in result.checks if check.name.startswith("smtp.rcpt ")]
    assert rcpt_checks == [
        Check(f"smtp.rcpt {USER}", True, f"<{USER}> accepted (250 2.1.5), as expected"),
        Check(
            "smtp.rcpt info@example.test",
            True,
            "<info@example.test> accepted (250 2.1.5), as expected",
        ),
        Check(
            "smtp.rcpt anyone@catchall.test",
            True,
            "<anyone@catchall.test> accepted (250 2.1.5), as expected",
        ),
        Check(
            "smtp.rcpt nobody@example.test",
            True,
            "<nobody@example.test> rejected (550 5.1.1), as expected",
        ),
        Check(
            "smtp.rcpt someone@remote.test",
            True,
            "<someone@remote.test> rejected (503 5.7.1), as expected",
        ),
        Check(
            "smtp.rcpt a.na+tag@example.test",
            True,
            "<a.na+tag@example.test> accepted (250 2.1.5), as expected",
        ),
        Check(
            "smtp.rcpt ñandú@example.test",
            True,
            "<ñandú@example.test> accepted (250 2.1.5), as expected",
        ),
    ]
    assert "queued" not in server.mail_log_text()  # RCPT only: nothing was ever sent


def test_recipients_against_expectation_fail(server: ChasquidServer, config: ConfigDir) -> None:
    rcpt = (
        ("nobody@example.test", True),
        (USER, False),
        ("info@example.test", True),
        ("two words@example.test", True),
        ("ana@example.test>\r\nDATA", True),
    )
    result = probe(spec_for(server, config, rcpt=rcpt))

    assert not result.ok
    assert result.failures() == (
        Check(
            "smtp.rcpt nobody@example.test",
            False,
            "<nobody@example.test> rejected (550 5.1.1), but should be accepted",
        ),
        Check(f"smtp.rcpt {USER}", False, f"<{USER}> accepted (250 2.1.5), but should be rejected"),
        Check("smtp.rcpt two words@example.test", False, "not an address RCPT can ask"),
        Check("smtp.rcpt ana@example.test>\r\nDATA", False, "not an address RCPT can ask"),
    )
    assert "queued" not in server.mail_log_text()


def test_many_rejections_and_recipients_are_each_answered(
    server: ChasquidServer, config: ConfigDir
) -> None:
    """chasquid drops a connection at its third error and takes 100 recipients per envelope."""
    unknown = tuple((f"nobody{i}@example.test", False) for i in range(7))
    known = tuple((f"ana+{i}@example.test", True) for i in range(150))
    result = probe(spec_for(server, config, rcpt=unknown + known + unknown[:3]))

    assert result.ok, result.failures()
    rcpt_checks = [check for check in result.checks if check.name.startswith("smtp.rcpt ")]
    assert len(rcpt_checks) == 160
    assert all("(550 5.1.1), as expected" in c.detail for c in rcpt_checks if "nobody" in c.name)


def test_smtp_role_on_the_submission_port_fails(server: ChasquidServer, config: ConfigDir) -> None:
    spec = spec_for(server, config, rcpt=((USER, True),))
    spec = dataclasses.replace(spec, smtp=spec.submission, submission=None, submission_tls=None)

    result = probe(spec)

    assert result.failures() == (
        Check("smtp.session", False, f"{spec.smtp}: MAIL FROM:<> answered 550 5.7.9, expected 250"),
    )
