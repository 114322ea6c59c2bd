"""SMTP as a mail client speaks it: the certificate each port serves, and a test message.

``served_certificates`` connects to chasquid's three roles as a remote client
would (STARTTLS on 25 and 587, TLS on connect on 465, SNI = the hostname) and
returns each leaf certificate, unverified: ``served`` judges it. ``send_test``
submits one message with AUTH over TLS, verified unless the caller says
``insecure``, and returns what the server said at each step. The password is
only ever handed to smtplib's AUTH; no message here can hold it.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from gitops_mail.errors import GitopsMailError
from gitops_mail.host.probe.spec import Endpoint, ProbeSpec

EHLO_NAME = "localhost"
TIMEOUT = 10.0
ROLES = (("smtp", 25), ("submission", 587), ("submission_tls", 465))


@dataclass(frozen=True)
class Served:
    role: str  # smtp (25, STARTTLS), submission (587, STARTTLS), submission_tls (465)
    endpoint: Endpoint
    der: bytes | None  # the leaf certificate presented; None when none was reached
    error: str = ""


def served_certificates(spec: ProbeSpec, timeout: float = TIMEOUT) -> list[Served]:
    """The leaf each listening role presents, fetched in parallel."""
    jobs = [
        (role, endpoint)
        for role, endpoint in zip(
            ("smtp", "submission", "submission_tls"),
            (spec.smtp, spec.submission, spec.submission_tls),
            strict=True,
        )
        if endpoint is not None
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [
            pool.submit(_fetch, role, endpoint, spec.hostname, timeout) for role, endpoint in jobs
        ]
    return [future.result() for future in futures]


def _fetch(role: str, endpoint: Endpoint, hostname: str, timeout: float) -> Served:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # compared with the disk and judged by `served`
    implicit = role == "submission_tls"
    try:
        with _session(endpoint, hostname, context, implicit, timeout) as (client, _):
            der = _peer(client)
    except (OSError, smtplib.SMTPException, _Refused) as exc:
        return Served(role, endpoint, None, str(exc) or type(exc).__name__)
    return Served(role, endpoint, der, "" if der else "no certificate was presented")


def _peer(client: smtplib.SMTP) -> bytes | None:
    sock = client.sock
    return sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None


class _Refused(Exception):
    """The server answered a step with something other than what comes next."""


@contextlib.contextmanager
def _session(
    endpoint: Endpoint, sni: str, context: ssl.SSLContext, implicit: bool, timeout: float
) -> Iterator[tuple[smtplib.SMTP, str]]:
    """A session in TLS after EHLO, and the banner, connected to ``endpoint`` with SNI ``sni``.

    smtplib names the TLS peer after the host it was built with, so the
    socket is made here: the host reached (an address) and the name checked
    (the hostname) can differ.
    """
    sock: socket.socket = socket.create_connection((endpoint.host, endpoint.port), timeout)
    client = smtplib.SMTP(local_hostname=EHLO_NAME, timeout=timeout)
    try:
        if implicit:
            sock = context.wrap_socket(sock, server_hostname=sni)
        client.sock = sock
        banner = client.getreply()
        _expect(banner, 220, "banner")
        _expect(client.ehlo(), 250, "EHLO")
        if not implicit:
            _expect(client.docmd("STARTTLS"), 220, "STARTTLS")
            client.sock = context.wrap_socket(sock, server_hostname=sni)
            client.file, client.ehlo_resp, client.esmtp_features = None, None, {}
            _expect(client.ehlo(), 250, "EHLO after STARTTLS")
        yield client, _reply(*banner)
    finally:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            client.quit()
        client.close()


def _expect(reply: tuple[int, bytes], code: int, what: str) -> None:
    if reply[0] != code:
        raise _Refused(f"{what} answered {_reply(*reply)}, expected {code}")


# --- send-test ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    banner: str
    tls_version: str
    cipher: str
    der: bytes  # the server's leaf certificate
    verified: bool
    auth: str  # the reply to AUTH
    answer: str  # the reply to the end of DATA: the server took the message (or not)
    message_id: str


@dataclass(frozen=True)
class Submission:
    server: str
    port: int
    implicit_tls: bool  # TLS on connect (465) instead of STARTTLS
    sender: str
    recipient: str
    user: str
    insecure: bool = False  # do not verify the certificate (a self-signed test server)
    ca_file: str | None = None  # verify against this CA file instead of the system's


def send_test(sub: Submission, password: str, timeout: float = TIMEOUT) -> Sent:
    """Submit one short message; ``SendFailed`` says at which step and why."""
    endpoint = Endpoint(sub.server, sub.port)
    try:
        with _session(endpoint, sub.server, _client_context(sub), sub.implicit_tls, timeout) as (
            client,
            banner,
        ):
            return _submit(client, banner, sub, password)
    except ssl.SSLCertVerificationError as exc:
        raise SendFailed(
            f"the certificate of {sub.server} is not trusted: {exc.verify_message}",
            "pass --ca-file for a private CA, or --insecure for a self-signed test server",
        ) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise SendFailed(
            f"{sub.server} refused the login of {sub.user}: "
            + _reply(exc.smtp_code, exc.smtp_error),
            "check the user and the password (GITOPS_MAIL_PASSWORD or the prompt)",
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise SendFailed(
            f"{sub.server} refused: {_reply(exc.smtp_code, exc.smtp_error)}",
            "the answer above is the server's; its log says more",
        ) from None
    except _Refused as exc:
        raise SendFailed(f"{sub.server}:{sub.port}: {exc}", _PORT_HINT) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise SendFailed(
            f"cannot talk to {sub.server}:{sub.port}: {exc or type(exc).__name__}",
            "check --server and --port, and that the server runs",
        ) from None


class SendFailed(GitopsMailError):
    """The test message was not accepted: the server's answer or the connection's error."""


def _client_context(sub: Submission) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=sub.ca_file)
    if sub.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _submit(client: smtplib.SMTP, banner: str, sub: Submission, password: str) -> Sent:
    sock = client.sock
    assert isinstance(sock, ssl.SSLSocket)  # noqa: S101 - _session made it one
    tls = (sock.version() or "?", (sock.cipher() or ("?",))[0], _peer(client) or b"")
    auth = client.login(sub.user, password)
    message = _message(sub)
    _step(client.mail(sub.sender), 250)
    _step(client.rcpt(sub.recipient), 250, 251)
    answer = _step(client.data(message.as_bytes()), 250)
    return Sent(banner, *tls, not sub.insecure, _reply(*auth), answer, str(message["Message-ID"]))


_PORT_HINT = "use --port 465 for TLS on connect, or 587 for STARTTLS"


def _step(reply: tuple[int, bytes], *codes: int) -> str:
    if reply[0] not in codes:
        raise smtplib.SMTPResponseException(reply[0], reply[1])
    return _reply(*reply)


def _reply(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(words.split())}"


def _message(sub: Submission) -> EmailMessage:
    now = datetime.now(UTC)
    message = EmailMessage()
    message["From"] = sub.sender
    message["To"] = sub.recipient
    message["Subject"] = f"gitops-mail send-test {now:%Y-%m-%d %H:%M:%S} UTC"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=sub.sender.rpartition("@")[2] or None)
    message.set_content(
        f"A test message from gitops-mail send-test, submitted to {sub.server}:{sub.port}"
        f" as {sub.user}.\n"
    )
    return message
