"""The end-to-end harness itself: namespace, chasquid fixture, TLS, AUTH, delivery."""

from __future__ import annotations

import errno
import os
import smtplib
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import ChasquidServer, ConfigDir

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.netns, pytest.mark.chasquid]

USER = "user@example.test"
PASSWORD = "correct horse"


@pytest.fixture
def config(tmp_path: Path, make_config_dir) -> ConfigDir:
    return make_config_dir(tmp_path, users={USER: PASSWORD})


@pytest.fixture
def server(config: ConfigDir, chasquid_server) -> ChasquidServer:
    return chasquid_server(config)


def auth_ok(server: ChasquidServer, user: str, password: str, mechanism: str = "PLAIN") -> bool:
    try:
        server.smtp(user=user, password=password, mechanism=mechanism).quit()
    except smtplib.SMTPAuthenticationError:
        return False
    return True


def test_only_loopback_exists() -> None:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    names = [line.split(":")[1].strip() for line in out.stdout.splitlines()]
    assert names == ["lo"]
    assert "UP" in out.stdout
    assert Path("/etc/resolv.conf").read_text() == "nameserver 127.0.0.1\n"
    assert socket.gethostbyname("mail.example.test") == "127.0.0.1"


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM])
def test_nothing_leaves_the_machine(kind: socket.SocketKind) -> None:
    # 192.0.2.1 is TEST-NET-1; inside the namespace there is no route to it.
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.settimeout(2)
        with pytest.raises(OSError) as caught:
            sock.connect(("192.0.2.1", 25))
    assert caught.value.errno == errno.ENETUNREACH


def test_banner_is_the_hostname(server: ChasquidServer) -> None:
    assert server.hostname == "mail.example.test"
    with socket.create_connection(("127.0.0.1", server.ports.smtp), timeout=10) as sock:
        banner = sock.makefile("rb").readline()
    assert banner == b"220 mail.example.test ESMTP chasquid\r\n"
    assert server.error_lines() == []


@pytest.mark.parametrize("port", ["submission", "submission_over_tls", "smtp"])
def test_tls_presents_our_certificate(server: ChasquidServer, config: ConfigDir, port: str) -> None:
    with server.smtp(port) as smtp:
        sock = smtp.sock
        assert sock is not None and hasattr(sock, "getpeercert")
        assert sock.getpeercert(binary_form=True) == config.cert.leaf_der


def test_auth_offered_only_after_starttls(server: ChasquidServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports.submission, timeout=10) as smtp:
        smtp.ehlo("client.example.test")
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")
    with server.smtp() as smtp:
        assert smtp.esmtp_features["auth"].split() == ["PLAIN"]  # chasquid offers only PLAIN


def test_auth_accepts_the_password_and_rejects_a_wrong_one(server: ChasquidServer) -> None:
    assert auth_ok(server, USER, PASSWORD)
    with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
        server.smtp(user=USER, password="wrong password")
    assert caught.value.smtp_code == 535
    assert caught.value.smtp_error == b"5.7.8 Incorrect user or password"
    assert not auth_ok(server, "nobody@example.test", PASSWORD)


def test_auth_login_is_refused(server: ChasquidServer) -> None:
    with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
        server.smtp(user=USER, password=PASSWORD, mechanism="LOGIN")
    assert caught.value.smtp_code == 534


def test_submitted_mail_reaches_the_mailbox(
    server: ChasquidServer, config: ConfigDir, send_mail, wait_for
) -> None:
    message_id = send_mail(
        server, USER, USER, user=USER, password=PASSWORD, subject="harness delivery"
    )
    mail = wait_for(lambda: config.read_mailbox(USER), what="delivery to the mailbox file")
    assert f"Message-ID: {message_id}".encode() in mail
    assert b"Subject: harness delivery" in mail
    assert b"Hello from the end-to-end tests." in mail
    wait_for(lambda: "all done" in server.mail_log_text(), what="the mail log entry")
    assert "from=user@example.test all done" in server.mail_log_text()


def test_submission_over_tls_delivers_too(
    server: ChasquidServer, config: ConfigDir, send_mail, wait_for
) -> None:
    message_id = send_mail(
        server, USER, USER, user=USER, password=PASSWORD, port="submission_over_tls"
    )
    assert message_id.encode() in wait_for(lambda: config.read_mailbox(USER))


def test_swaks_delivers(server: ChasquidServer, config: ConfigDir, swaks, wait_for) -> None:
    done = swaks(server, USER, USER, user=USER, password=PASSWORD, subject="via swaks")
    assert " ~> .\n<~  250 2.0.0 " in done.stdout  # chasquid's reply texts are whimsical
    mail = wait_for(lambda: config.read_mailbox(USER))
    assert b"Subject: via swaks" in mail
    assert b"Hello from swaks." in mail


def test_swaks_with_a_wrong_password_fails(server: ChasquidServer, swaks) -> None:
    done = swaks(server, USER, USER, user=USER, password="wrong", check=False)
    assert done.returncode != 0
    assert "535 5.7.8 Incorrect user or password" in done.stdout


def test_a_new_user_is_picked_up_by_the_reload(
    server: ChasquidServer, config: ConfigDir, wait_for
) -> None:
    new_user, new_password = "new@example.test", "fresh password"
    assert not auth_ok(server, new_user, new_password)
    config.add_user(new_user, new_password)
    wait_for(lambda: auth_ok(server, new_user, new_password), what="the 1 s users reload")
    assert auth_ok(server, USER, PASSWORD)


def test_sigterm_stops_and_reaps_it(server: ChasquidServer) -> None:
    pid = server.pid
    assert server.stop() == 1
    assert not server.is_running()
    assert not Path(f"/proc/{pid}").exists()  # reaped: no zombie left
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", server.ports.smtp)) == errno.ECONNREFUSED
    assert "Got signal to exit: terminated" in server.log_text()


def test_restart_keeps_ports_and_answers_again(server: ChasquidServer) -> None:
    first_pid, ports = server.pid, server.ports
    server.restart()
    assert server.pid != first_pid
    assert server.ports == ports
    assert auth_ok(server, USER, PASSWORD)
    assert server.log_text().count("chasquid starting") == 2


def test_monitoring_answers(server: ChasquidServer) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(server.monitoring_url("/debug/flags"), timeout=10) as response:
        assert response.status == 200
        assert b"testing__reload_every" in response.read()


def test_config_overrides_reach_chasquid(config: ConfigDir, chasquid_server, send_mail) -> None:
    server = chasquid_server(config, max_data_size_mb=1)
    assert "Max data size (MB): 1\n" in server.log_text()
    with pytest.raises(smtplib.SMTPDataError) as caught:
        send_mail(server, USER, USER, user=USER, password=PASSWORD, body="x" * 2_000_000)
    assert (caught.value.smtp_code, caught.value.smtp_error) == (552, b"5.3.4 Message too big")


def test_a_broken_config_raises_with_the_log(tmp_path: Path, chasquid_server) -> None:
    config_dir = tmp_path / "empty"
    (config_dir / "domains" / "example.test").mkdir(parents=True)
    (config_dir / "chasquid.conf").write_text('hostname: "mail.example.test"\n')
    with pytest.raises(RuntimeError, match="exited with code 1 during start") as caught:
        chasquid_server(config_dir)
    assert caught.value.returncode == 1  # type: ignore[attr-defined]
    assert '☠ chasquid.go:279    Error reading "certs/" directory' in caught.value.log


def test_netns_run_kills_leftovers_and_keeps_the_exit_code() -> None:
    # A nested netns-run (inside, as root, it can make namespaces again).
    marker = f"leftover-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k != "GITOPS_MAIL_NETNS"}
    script = f"(exec -a {marker} sleep 600) & exit 7"
    done = subprocess.run(
        [REPO / "scripts" / "netns-run", "bash", "-c", script], env=env, timeout=30, check=False
    )
    assert done.returncode == 7
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if marker in _cmdline(p)]


def _cmdline(path: Path) -> str:
    try:
        return path.read_bytes().decode(errors="replace")
    except OSError:
        return ""
