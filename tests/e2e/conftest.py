"""End-to-end fixtures: a real chasquid, real TLS, real SMTP clients.

Everything here runs only inside the private network namespace that
``scripts/netns-run`` makes (``make test`` runs the whole suite in it): only
``lo`` exists there, so neither chasquid nor a client can reach beyond this
machine. Outside it every test in this folder is skipped.

``tmp_path`` is overridden here: a fresh directory the ``chasquid`` user can
reach (``support.chasquiduser.reachable_dir``), since gitops-mail runs chasquid
as chasquid under ``service: supervise`` and in the pre-flight, and pytest's
own temporary directories are root's and 0700.

Fixtures (function scoped; each returns a callable):

- ``tls_cert(hostname="mail.example.test") -> TlsCert``: key and certificate
  for ``hostname`` and 127.0.0.1, issued by a session test CA (``ca_file``).
- ``make_config_dir(base, hostname=..., domains=..., users={addr: pw})
  -> ConfigDir``: a minimal config dir in ``base/config``; its delivery agent
  appends each message to ``base/mailboxes/<recipient>``.
- ``chasquid_server(config_dir, **overrides) -> ChasquidServer``: the real
  ``/usr/bin/chasquid`` on free loopback ports, stopped and reaped at teardown.
  ``server.smtp(port, user=, password=)`` opens a verified TLS session.
- ``send_mail(server, from_, to, *, user, password, port="submission")``:
  smtplib with verified TLS and AUTH PLAIN; returns the Message-ID.
- ``swaks(server, from_, to, ...)``: the same through ``/usr/bin/swaks``.
- ``wait_for(predicate, timeout=10)``: poll until ``predicate()`` is truthy.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import smtplib
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
import trustme
from support import chasquiduser
from support.mail import MDA
from support.tools import skip_or_fail
from support.wait import poll

NETNS_ENV = "GITOPS_MAIL_NETNS"
HOSTNAME = "mail.example.test"
CLIENT_HELO = "client.example.test"
CHASQUID = "/usr/bin/chasquid"
CHASQUID_UTIL = "/usr/bin/chasquid-util"
SWAKS = "/usr/bin/swaks"
START_TIMEOUT = 60.0  # seconds: only bounds a server that never starts
STOP_TIMEOUT = 10.0
LISTEN_MARK = "Server listening on "


def require_netns() -> None:
    """Skip unless inside scripts/netns-run; fail if the namespace is not private."""
    if os.environ.get(NETNS_ENV) != "1":
        skip_or_fail(
            "end-to-end test: runs only inside the private network namespace; "
            "use `make test` or `scripts/netns-run .venv/bin/python -m pytest tests/e2e`"
        )
    names = sorted(name for _, name in socket.if_nameindex())
    if names != ["lo"]:
        pytest.fail(f"{NETNS_ENV}=1 but network interfaces {names} exist: not isolated")


@pytest.fixture(autouse=True)
def _netns_only() -> None:
    require_netns()


@pytest.fixture
def tmp_path(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh directory per test that the chasquid user can reach; removed afterwards."""
    with chasquiduser.reachable_dir(request.node.name) as path:
        yield path


# --- waiting -----------------------------------------------------------------


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """``wait_for(predicate, timeout=10, what="", interval=0.01) -> value``."""
    require_netns()
    return poll


# --- TLS -----------------------------------------------------------------------


@dataclass(frozen=True)
class TlsCert:
    hostname: str
    fullchain: Path  # leaf certificate (and chain), PEM
    privkey: Path  # its private key, PEM
    ca_file: Path  # the CA that issued it: verify against this
    leaf_der: bytes  # the leaf certificate, DER, to compare with a peer's

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    """One CA for the session (session scoped) and its certificate file."""
    require_netns()
    ca = trustme.CA(organization_name="gitops-mail tests")
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@pytest.fixture
def tls_cert(tmp_path: Path, test_ca: tuple[trustme.CA, Path]) -> Callable[..., TlsCert]:
    """``tls_cert(hostname="mail.example.test") -> TlsCert`` for hostname and 127.0.0.1."""
    require_netns()
    ca, ca_file = test_ca

    def make(hostname: str = HOSTNAME) -> TlsCert:
        leaf = ca.issue_cert(hostname, "127.0.0.1", common_name=hostname)
        out = tmp_path / "tls" / hostname
        out.mkdir(parents=True, exist_ok=True)
        fullchain, privkey = out / "fullchain.pem", out / "privkey.pem"
        fullchain.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(privkey))
        der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
        return TlsCert(hostname, fullchain, privkey, ca_file, der)

    return make


# --- config dir ----------------------------------------------------------------


@dataclass(frozen=True)
class ConfigDir:
    path: Path  # the chasquid config dir (chasquid.conf, certs/, domains/)
    hostname: str
    mailboxes: Path  # one file per recipient address, appended to on delivery
    cert: TlsCert

    def mailbox(self, rcpt: str) -> Path:
        return self.mailboxes / rcpt

    def read_mailbox(self, rcpt: str) -> bytes:
        """Everything delivered to ``rcpt`` so far (b"" if nothing)."""
        path = self.mailbox(rcpt)
        return path.read_bytes() if path.exists() else b""

    def add_user(self, address: str, password: str) -> None:
        add_user(self.path, address, password)


def add_user(config_dir: Path, address: str, password: str) -> None:
    """Add (or replace) a user with the real chasquid-util."""
    subprocess.run(
        [CHASQUID_UTIL, f"-C={config_dir}", "user-add", address, f"--password={password}"],
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.fixture
def make_config_dir(tls_cert: Callable[..., TlsCert]) -> Callable[..., ConfigDir]:
    """``make_config_dir(base, hostname=..., domains=("example.test",), users={addr: pw})``.

    Writes ``base/config`` (chasquid.conf with hostname and delivery agent,
    ``certs/<hostname>/``, ``domains/<d>/`` for each domain and each user's
    domain, users added with chasquid-util) and ``base/mailboxes``. Listen
    addresses, data_dir and mail_log_path come from ``chasquid_server``.
    """
    require_netns()

    def make(
        base: Path,
        hostname: str = HOSTNAME,
        domains: Sequence[str] = ("example.test",),
        users: dict[str, str] | None = None,
    ) -> ConfigDir:
        users = users or {}
        config, mailboxes = base / "config", base / "mailboxes"
        config.mkdir(parents=True)
        mailboxes.mkdir()
        mda = base / "mda.sh"
        mda.write_text(MDA.format(mailboxes=mailboxes))
        mda.chmod(0o755)
        (config / "chasquid.conf").write_text(
            f'hostname: "{hostname}"\n'
            f'mail_delivery_agent_bin: "{mda}"\n'
            'mail_delivery_agent_args: "%to%"\n'
        )
        cert = tls_cert(hostname)
        certs = config / "certs" / hostname
        certs.mkdir(parents=True)
        (certs / "fullchain.pem").write_bytes(cert.fullchain.read_bytes())
        (certs / "privkey.pem").write_bytes(cert.privkey.read_bytes())
        for domain in {*domains, *(addr.rpartition("@")[2] for addr in users)}:
            (config / "domains" / domain).mkdir(parents=True, exist_ok=True)
        for address, password in users.items():
            add_user(config, address, password)
        return ConfigDir(config, hostname, mailboxes, cert)

    return make


# --- chasquid --------------------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    smtp: int
    submission: int
    submission_over_tls: int
    monitoring: int

    def __getitem__(self, name: str) -> int:
        return int(getattr(self, name))


class _PortPool:
    """Free loopback ports below the kernel's ephemeral range (32768 and up).

    Client connections take their source ports from the ephemeral range, so a
    port handed out here cannot be taken by one before chasquid binds it.
    Ports are handed out in turn from a random start, wrapping around.
    """

    LOW, HIGH = 10000, 32768

    def __init__(self) -> None:
        start = random.randrange(self.LOW, self.HIGH)  # noqa: S311 - not for security
        self._order: Iterator[int] = itertools.cycle(
            [*range(start, self.HIGH), *range(self.LOW, start)]
        )

    def take(self) -> int:
        for port in itertools.islice(self._order, self.HIGH - self.LOW):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
        raise RuntimeError("no free loopback port for chasquid")


_PORTS = _PortPool()


def textproto_field(name: str, value: str | int | bool | Sequence[str]) -> str:
    """One chasquid.conf field as text protobuf (a sequence makes it repeated)."""
    if isinstance(value, bool):
        return f"{name}: {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"{name}: {value}"
    if isinstance(value, str):
        quoted = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{name}: "{quoted}"'
    return " ".join(textproto_field(name, item) for item in value)


@dataclass(eq=False)
class ChasquidServer:
    """A chasquid child process; ``stop()``, ``restart()``, logs and ports."""

    config_dir: Path
    run_dir: Path  # holds data/, mail.log and chasquid.log
    ports: Ports
    ca_file: Path
    argv: list[str]
    hostname: str = ""
    process: subprocess.Popen[bytes] | None = None
    _run_starts: list[int] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def mail_log(self) -> Path:
        return self.run_dir / "mail.log"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "chasquid.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_text(self) -> str:
        """chasquid's own log (stdout and stderr), every run so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def mail_log_text(self) -> str:
        return self.mail_log.read_text(errors="replace") if self.mail_log.exists() else ""

    def error_lines(self) -> list[str]:
        """Lines of the current run's log marked as errors ("E ...") or fatal ("☠ ...")."""
        start = self._run_starts[-1] if self._run_starts else 0
        lines = self.log_text()[start:].splitlines()
        return [line for line in lines if line.startswith(("E ", "☠ "))]

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start chasquid and wait until all its ports listen."""
        if self.is_running():
            raise RuntimeError("chasquid is already running")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._run_starts.append(offset)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_ready(offset)

    def stop(self) -> int:
        """SIGTERM, then wait (and reap). Returns the exit code: 1 is normal."""
        if self.process is None:
            raise RuntimeError("chasquid was never started")
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def restart(self) -> None:
        """Stop and start again with the same ports, config and data_dir."""
        self.stop()
        self.start()

    def monitoring_url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.ports.monitoring}{path}"

    def smtp(
        self,
        port: str = "submission",
        *,
        user: str | None = None,
        password: str | None = None,
        mechanism: str = "PLAIN",
    ) -> smtplib.SMTP:
        """An SMTP session in verified TLS after EHLO, logged in if ``user``.

        ``port`` is smtp or submission (STARTTLS) or submission_over_tls.
        AUTH uses one ``mechanism``; chasquid offers only PLAIN (LOGIN gets
        534). A wrong password raises ``smtplib.SMTPAuthenticationError`` (535).
        """
        smtp = smtp_connect(self, port)
        if user is not None:
            try:
                smtp_auth(smtp, user, password or "", mechanism)
            except BaseException:
                smtp.close()
                raise
        return smtp

    def _wait_ready(self, offset: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready(offset):
            if self.process is not None and self.process.poll() is not None:
                raise ChasquidExitedError(self, self.process.returncode)
            if time.monotonic() >= deadline:
                self.stop()
                raise ChasquidExitedError(self, None)
            time.sleep(0.005)
        self.hostname = _logged_hostname(self.log_text()[offset:])

    def _ready(self, offset: int) -> bool:
        if self.log_text()[offset:].count(LISTEN_MARK) < 3:
            return False
        with socket.socket() as sock:  # monitoring logs before it listens
            return sock.connect_ex(("127.0.0.1", self.ports.monitoring)) == 0


class ChasquidExitedError(RuntimeError):
    """chasquid ended (or never got ready) during start; the message has its log."""

    def __init__(self, server: ChasquidServer, returncode: int | None) -> None:
        self.returncode = returncode
        self.log = server.log_text()[server._run_starts[-1] :]
        what = f"exited with code {returncode}" if returncode is not None else "did not get ready"
        super().__init__(f"chasquid {what} during start; its log:\n{self.log}")


def _logged_hostname(log: str) -> str:
    for line in log.splitlines():
        if "Hostname: " in line:
            return line.split("Hostname: ", 1)[1].strip().strip('"')
    return ""


@pytest.fixture
def chasquid_server(
    tmp_path: Path, test_ca: tuple[trustme.CA, Path]
) -> Iterator[Callable[..., ChasquidServer]]:
    """``start(config_dir, *, reload_every="1s", flags=(), ca_file=None, **overrides)``.

    ``config_dir`` is a ``Path`` or a ``ConfigDir``. Listen addresses (free
    loopback ports), a fresh ``data_dir`` and ``mail_log_path`` are passed with
    ``-config_overrides``, after any other chasquid.conf field given as a
    keyword (``max_data_size_mb=1``). ``reload_every`` is
    ``-testing__reload_every`` (None: chasquid's 30 s default); ``flags`` are
    more command-line flags. Raises ``ChasquidExitedError`` if chasquid ends
    before listening. Every server is stopped and reaped at teardown.
    """
    require_netns()
    servers: list[ChasquidServer] = []

    def start(
        config_dir: Path | ConfigDir,
        *,
        reload_every: str | None = "1s",
        flags: Sequence[str] = (),
        ca_file: Path | None = None,
        **overrides: str | int | bool | Sequence[str],
    ) -> ChasquidServer:
        if isinstance(config_dir, ConfigDir):
            ca_file = ca_file or config_dir.cert.ca_file
            config_dir = config_dir.path
        run_dir = tmp_path / f"chasquid-{len(servers)}"
        ports = Ports(_PORTS.take(), _PORTS.take(), _PORTS.take(), _PORTS.take())
        fields = {
            **overrides,
            "smtp_address": f"127.0.0.1:{ports.smtp}",
            "submission_address": f"127.0.0.1:{ports.submission}",
            "submission_over_tls_address": f"127.0.0.1:{ports.submission_over_tls}",
            "monitoring_address": f"127.0.0.1:{ports.monitoring}",
            "data_dir": str(run_dir / "data"),
            "mail_log_path": str(run_dir / "mail.log"),
        }
        argv = [CHASQUID, f"-config_dir={config_dir}"]
        argv.append("-config_overrides=" + " ".join(textproto_field(*kv) for kv in fields.items()))
        if reload_every is not None:
            argv.append(f"-testing__reload_every={reload_every}")
        argv.extend(flags)
        server = ChasquidServer(config_dir, run_dir, ports, ca_file or test_ca[1], argv)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        if server.process is not None:
            server.stop()
            assert server.process.poll() is not None


# --- clients -----------------------------------------------------------------------


def build_message(from_: str, to: Sequence[str], subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = from_
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="client.example.test")
    msg.set_content(body)
    return msg


def smtp_connect(server: ChasquidServer, port: str = "submission") -> smtplib.SMTP:
    """An SMTP session on ``port``, already in verified TLS, after EHLO."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    number = server.ports[port]
    if port == "submission_over_tls":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            "127.0.0.1", number, local_hostname=CLIENT_HELO, timeout=10, context=context
        )
    else:
        smtp = smtplib.SMTP("127.0.0.1", number, local_hostname=CLIENT_HELO, timeout=10)
        smtp.starttls(context=context)
    smtp.ehlo()
    return smtp


def smtp_auth(smtp: smtplib.SMTP, user: str, password: str, mechanism: str = "PLAIN") -> None:
    """AUTH with one mechanism (PLAIN or LOGIN); raises SMTPAuthenticationError."""
    smtp.user, smtp.password = user, password
    authobject = {"PLAIN": smtp.auth_plain, "LOGIN": smtp.auth_login}[mechanism]
    smtp.auth(mechanism, authobject)


def _send_mail(
    server: ChasquidServer,
    from_: str,
    to: str | Sequence[str],
    *,
    user: str | None = None,
    password: str | None = None,
    port: str = "submission",
    mechanism: str = "PLAIN",
    subject: str = "test message",
    body: str = "Hello from the end-to-end tests.\n",
) -> str:
    """Submit one message over verified TLS (AUTH if ``user``); return its Message-ID."""
    rcpts = [to] if isinstance(to, str) else list(to)
    msg = build_message(from_, rcpts, subject, body)
    with server.smtp(port, user=user, password=password, mechanism=mechanism) as smtp:
        smtp.send_message(msg, from_addr=from_, to_addrs=rcpts)
    return str(msg["Message-ID"])


@pytest.fixture
def send_mail() -> Callable[..., str]:
    """``send_mail(server, from_, to, *, user=None, password=None, port="submission",
    mechanism="PLAIN", subject=..., body=...) -> message_id``; smtplib errors propagate."""
    require_netns()
    return _send_mail


def _swaks(
    server: ChasquidServer,
    from_: str,
    to: str | Sequence[str],
    *,
    user: str | None = None,
    password: str | None = None,
    port: str = "submission",
    mechanism: str = "PLAIN",
    subject: str = "test message",
    body: str = "Hello from swaks.",
    extra: Sequence[str] = (),
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run the real swaks with verified TLS (STARTTLS, or TLS on connect for 465)."""
    rcpts = [to] if isinstance(to, str) else list(to)
    argv = [SWAKS, "--server", "127.0.0.1", "--port", str(server.ports[port])]
    argv += ["--from", from_, "--to", ",".join(rcpts), "--helo", CLIENT_HELO]
    argv += ["--tls-on-connect" if port == "submission_over_tls" else "--tls"]
    argv += ["--tls-verify", "--tls-ca-path", str(server.ca_file), "--timeout", "10"]
    argv += ["--header", f"Subject: {subject}", "--body", body]
    if user is not None:
        argv += ["--auth", mechanism, "--auth-user", user, "--auth-password", password or ""]
    done = subprocess.run(
        [*argv, *extra],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if check and done.returncode != 0:
        pytest.fail(f"swaks exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done


@pytest.fixture
def swaks() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``swaks(server, from_, to, *, user=None, password=None, port="submission",
    mechanism="PLAIN", subject=..., body=..., extra=(), check=True) -> CompletedProcess``."""
    require_netns()
    return _swaks
