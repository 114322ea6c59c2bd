"""``gitops-mail send-test`` against a real chasquid: AUTH over 465 and 587, verified TLS or
``--insecure``, a wrong password, and a password that is never echoed nor printed."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ANA, PASSWORD = "ana@example.test", "s3cret-Passw0rd"
GITOPS_MAIL = [sys.executable, "-m", "gitops_mail"]


@pytest.fixture
def server(
    tmp_path: Path, make_config_dir: Callable[..., Any], chasquid_server: Callable[..., Any]
) -> Any:
    config = make_config_dir(tmp_path, users={ANA: PASSWORD})
    running = chasquid_server(config)
    running.config = config
    return running


def send_test(
    server: Any, *args: str, password: str | None = PASSWORD, port: str = "submission"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GITOPS_MAIL_PASSWORD"}
    if password is not None:
        env["GITOPS_MAIL_PASSWORD"] = password
    tls = "implicit" if port == "submission_over_tls" else "starttls"
    argv = ["send-test", "--from", ANA, "--to", ANA, "--server", "mail.example.test"]
    argv += ["--port", str(server.ports[port]), "--tls", tls, *args]
    return subprocess.run(
        [*GITOPS_MAIL, *argv],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def fields(out: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


@pytest.mark.parametrize(
    ("port", "mode"), [("submission_over_tls", "TLS on connect"), ("submission", "STARTTLS")]
)
def test_a_verified_submission_is_delivered_and_every_answer_shown(
    server: Any, wait_for: Callable[..., Any], port: str, mode: str
) -> None:
    done = send_test(server, "--ca-file", str(server.ca_file), port=port)
    assert done.returncode == 0, done.stderr
    shown = fields(done.stdout)
    assert shown["server"] == f"mail.example.test:{server.ports[port]} ({mode})"
    assert shown["banner"] == "220 mail.example.test ESMTP chasquid"
    assert shown["tls"].startswith("TLSv1.3, TLS_") and shown["tls"].endswith("verified")
    assert shown["certificate"].startswith("CN=mail.example.test,")
    assert "(mail.example.test; valid until " in shown["certificate"]
    assert shown["auth"].startswith("235 2.7.0 ") and shown["auth"].endswith(f"(as {ANA})")
    assert shown["answer"].startswith("250 2.0.0 ")
    mail = wait_for(lambda: server.config.read_mailbox(ANA), what="the test message delivered")
    assert shown["message-id"].encode() in mail
    assert b"Subject: gitops-mail send-test " in mail
    assert PASSWORD not in done.stdout + done.stderr


def test_a_wrong_password_is_refused_with_the_servers_answer_and_never_shown(
    server: Any,
) -> None:
    done = send_test(server, "--ca-file", str(server.ca_file), password="wrong-Passw0rd")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "gitops-mail: error: mail.example.test refused the login of ana@example.test:"
        " 535 5.7.8 Incorrect user or password",
        "    hint: check the user and the password (GITOPS_MAIL_PASSWORD or the prompt)",
    ]
    assert "wrong-Passw0rd" not in done.stdout + done.stderr
    assert server.config.read_mailbox(ANA) == b""


def test_an_untrusted_certificate_fails_unless_insecure(server: Any) -> None:
    done = send_test(server, port="submission_over_tls")  # the system CAs: not the test CA
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "gitops-mail: error: the certificate of mail.example.test is not trusted:"
        " unable to get local issuer certificate",
        "    hint: pass --ca-file for a private CA, or --insecure for a self-signed test server",
    ]
    done = send_test(server, "--insecure", port="submission_over_tls")
    assert done.returncode == 0, done.stderr
    assert fields(done.stdout)["tls"].endswith("certificate NOT verified (--insecure)")


def test_without_a_password_and_without_a_terminal_it_says_how_to_give_one(server: Any) -> None:
    done = send_test(server, "--ca-file", str(server.ca_file), password=None)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "gitops-mail: error: no password for ana@example.test",
        "    hint: set GITOPS_MAIL_PASSWORD, or run in a terminal to be asked for it",
    ]


def test_the_prompt_does_not_echo_the_password(server: Any, wait_for: Callable[..., Any]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GITOPS_MAIL_PASSWORD"}
    argv = [*GITOPS_MAIL, "send-test", "--from", ANA, "--to", ANA, "--server"]
    argv += ["mail.example.test", "--port", str(server.ports.submission)]
    argv += ["--ca-file", str(server.ca_file)]
    pid, fd = pty.fork()
    if pid == 0:  # the child: gitops-mail on the terminal
        os.execve(argv[0], argv, env)  # noqa: S606 - a fixed argv, no shell
    seen = read_until(fd, b"password for ana@example.test: ")
    os.write(fd, PASSWORD.encode() + b"\n")
    seen += read_until(fd, b"message-id:")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen.decode(errors="replace")
    assert PASSWORD.encode() not in seen
    assert b"answer:      250 2.0.0 " in seen


def read_until(fd: int, mark: bytes, timeout: float = 30) -> bytes:
    """What the terminal shows until ``mark`` (and what came with it)."""
    seen, deadline = b"", time.monotonic() + timeout
    while mark not in seen:
        assert time.monotonic() < deadline, f"no {mark!r} in {seen!r}"
        try:
            seen += os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
    return seen
