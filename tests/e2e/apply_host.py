"""What the apply sandbox stands on: names and paths, ports, processes, a mail client.

``apply_sandbox`` builds on it and ``apply_fixtures`` re-exports it: test
modules import from ``apply_fixtures`` only.
"""

from __future__ import annotations

import hashlib
import os
import random
import smtplib
import socket
import ssl
import sys
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from support.wait import poll

HOSTNAME = "mail.example.test"
DOMAIN = "example.test"
ANA, ANA_PASSWORD = "ana@example.test", "ana-password-1"
BOB, BOB_PASSWORD = "bob@example.test", "bob-password-2"
CLIENT_HELO = "client.example.test"
GITOPS_MAIL = [sys.executable, "-m", "gitops_mail"]
USERS_PATH = f"chasquid/domains/{DOMAIN}/users"
ALIASES_PATH = f"chasquid/domains/{DOMAIN}/aliases"
CONF_PATH = "chasquid/chasquid.conf"
MANIFEST_PATH = "gitops-mail.yaml"
BASE_ALIASES = "postmaster: ana\n"


# --- processes -----------------------------------------------------------------------


def chasquids_under(root: Path) -> list[str]:
    """chasquid processes (zombies included) whose command line names something under root."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        comm = stat_line[stat_line.index("(") + 1 : stat_line.rindex(")")]
        if comm == "chasquid" and str(root) in cmdline:
            found.append(f"{entry.name} {stat_line[stat_line.rindex(')') + 2]} {cmdline}")
    return found


def free_port(taken: set[int]) -> int:
    """A free loopback port below the ephemeral range (clients take those), not in taken."""
    while True:
        port = random.randrange(10000, 32768)  # noqa: S311 - not for security
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port


def leaf_sha256(fullchain: Path) -> str:
    """SHA-256 (hex) of the first certificate of a PEM file."""
    pem = fullchain.read_text()
    first = pem[: pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(first)).hexdigest()


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Ports:
    smtp: int
    submission: int
    submission_tls: int
    monitoring: int


class MailClient:
    """The sandbox's SMTP side: RCPT answers, the served certificate, messages that arrive."""

    root: Path
    ports: Ports
    ca_file: Path

    def rcpt(self, address: str) -> int:
        """RCPT TO on the SMTP port after ``MAIL FROM:<>``: chasquid's reply code."""
        with smtplib.SMTP(
            "127.0.0.1", self.ports.smtp, local_hostname=CLIENT_HELO, timeout=10
        ) as smtp:
            smtp.ehlo()
            code, _ = smtp.mail("<>")
            assert code == 250
            code, _ = smtp.rcpt(address)
            return code

    def served_leaf(self) -> bytes:
        """The certificate (DER) chasquid presents after STARTTLS on submission."""
        with smtplib.SMTP(
            "127.0.0.1", self.ports.submission, local_hostname=CLIENT_HELO, timeout=10
        ) as smtp:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            context.check_hostname = False
            smtp.starttls(context=context)
            sock = smtp.sock
            assert isinstance(sock, ssl.SSLSocket)
            leaf = sock.getpeercert(binary_form=True)
            assert leaf is not None
            return leaf

    def send(self, to: str, subject: str = "e2e") -> None:
        """Submit a message from ana (STARTTLS, AUTH PLAIN) to ``to``."""
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = ANA, to, subject
        msg.set_content("Hello from the apply tests.\n")
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with smtplib.SMTP(
            "127.0.0.1", self.ports.submission, local_hostname=CLIENT_HELO, timeout=10
        ) as smtp:
            smtp.starttls(context=context)
            smtp.ehlo()
            smtp.user, smtp.password = ANA, ANA_PASSWORD
            smtp.auth("PLAIN", smtp.auth_plain)
            refused = smtp.send_message(msg)
            assert refused == {}

    def delivered(self, mailbox: str, subject: str) -> bytes:
        """Wait for a message with ``subject`` in ``mailboxes/<mailbox>``; the mailbox."""
        path = self.root / "mailboxes" / mailbox

        def arrived() -> bytes:
            data = path.read_bytes() if path.exists() else b""
            return data if f"Subject: {subject}\n".encode() in data else b""

        found: bytes = poll(arrived, 10, f"{subject!r} in {path}")
        return found

    def mail_works(self, to: str = ANA, mailbox: str = ANA) -> None:
        """A real message through submission reaches ``mailbox``."""
        subject = f"check {os.urandom(4).hex()}"
        self.send(to, subject)
        self.delivered(mailbox, subject)
