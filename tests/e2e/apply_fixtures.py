"""Fixtures for the apply transaction's end-to-end tests (a pytest plugin).

A test module loads them with ``pytest_plugins = ["apply_fixtures"]``.

``make_sandbox(...) -> Sandbox`` builds one host as a server would have it:

- a bare conf repo (``origin``) and a clone to commit and push from
  (``workdir``), seeded with a manifest, a chasquid.conf listening on free
  loopback ports, one users file (``ana@example.test``) and aliases;
- a ``files:`` certificate source (the session test CA's leaf for
  mail.example.test and 127.0.0.1) and a delivery agent that appends each
  message to ``mailboxes/<recipient>``;
- host settings (``service: supervise``) and a ``Supervisor`` running the real
  chasquid on the config dir in a thread, stopped at teardown, after which no
  chasquid started under the test's directory may be left (read from /proc).

The ``gitops-mail`` command line runs as a child process (``Sandbox.gm``,
``Sandbox.start_gm``), as an operator would run it: exit codes, standard
output and standard error are the contract. ``Sandbox.run`` calls the same
``main`` in this process, for the many reads (status, history) and cheap
no-ops, without a Python start-up each.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import random
import shutil
import smtplib
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from gitops_mail import cli, hostconfig
from gitops_mail.supervisor import Supervisor

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

MDA = """#!/bin/sh
# Delivery agent: appends the message on stdin to {mailboxes}/<recipient>.
set -eu
tmp=$(mktemp "{mailboxes}/.incoming.XXXXXX")
cat >"$tmp"
cat "$tmp" >>"{mailboxes}/$1"
rm -f "$tmp"
"""

RESTART_SCRIPT = """#!/bin/sh
# restart_command for `service: command`: says it started (gate/entered), waits
# until gate/open exists, then has the supervisor start a new chasquid.
set -eu
touch "{gate}/entered"
while [ ! -e "{gate}/open" ]; do sleep 0.01; done
old=$(cat "{state}/chasquid.pid")
echo "$old" >"{state}/chasquid.restart"
kill "$old" 2>/dev/null || true  # it may have exited already (and wait to be started again)
while [ "$(cat "{state}/chasquid.pid")" = "$old" ]; do sleep 0.01; done
"""

TreeState = dict[str, tuple[str, int, int, int, bytes]]


# --- the live tree, byte for byte ------------------------------------------------------


def tree_state(root: Path) -> TreeState:
    """Every entry below ``root`` (and root as "."): kind, mode, uid, gid, bytes or target."""
    found = {".": _entry(root)}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory, name)
            found[path.relative_to(root).as_posix()] = _entry(path)
    return dict(sorted(found.items()))


def _entry(path: Path) -> tuple[str, int, int, int, bytes]:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return "link", 0, info.st_uid, info.st_gid, os.fsencode(os.readlink(path))
    data = b"" if stat.S_ISDIR(info.st_mode) else path.read_bytes()
    kind = "dir" if stat.S_ISDIR(info.st_mode) else "file"
    return kind, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, data


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


def poll(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Call ``predicate`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        time.sleep(0.01)


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


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


# --- the sandbox ------------------------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    smtp: int
    submission: int
    submission_tls: int
    monitoring: int


@dataclass
class Sandbox:
    root: Path
    config_dir: Path
    state_dir: Path
    host_file: Path
    origin: Any  # tests/conftest.py's Origin
    workdir: Any  # tests/conftest.py's Workdir (commit, push)
    ports: Ports
    ca_file: Path
    fullchain: Path
    privkey: Path
    users: UsersFiles
    issue_cert: Callable[..., Any]  # the tls_cert fixture
    chasquid_args: tuple[str, ...] = ()
    supervisor: Supervisor | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _children: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _thread: threading.Thread | None = None

    # --- the conf repo ---

    def conf(self, **fields: str) -> str:
        """chasquid.conf of this sandbox; keyword arguments replace or add fields."""
        values = {
            "hostname": HOSTNAME,
            "smtp_address": f"127.0.0.1:{self.ports.smtp}",
            "submission_address": f"127.0.0.1:{self.ports.submission}",
            "submission_over_tls_address": f"127.0.0.1:{self.ports.submission_tls}",
            "monitoring_address": f"127.0.0.1:{self.ports.monitoring}",
            "data_dir": str(self.root / "data"),
            "mail_log_path": str(self.root / "mail.log"),
            "mail_delivery_agent_bin": str(self.root / "mda.sh"),
            "mail_delivery_agent_args": "%to%",
            **fields,
        }
        return "".join(f'{name}: "{value}"\n' for name, value in values.items())

    def manifest(
        self, *, version: str = "1.11", fullchain: Path | None = None, key: Path | None = None
    ) -> str:
        return (
            "version: 1\n"
            "chasquid:\n"
            f'  version: "{version}"\n'
            "certificates:\n"
            f"  - name: {HOSTNAME}\n"
            f"    files: {{fullchain: {fullchain or self.fullchain}, key: {key or self.privkey}}}\n"
            "domains:\n"
            f"  {DOMAIN}: {{}}\n"
        )

    def base_files(self) -> dict[str, bytes | str | None]:
        return {
            MANIFEST_PATH: self.manifest(),
            CONF_PATH: self.conf(),
            USERS_PATH: self.users.ana,
            ALIASES_PATH: BASE_ALIASES,
        }

    def tip(self) -> str:
        """The revision main points at."""
        return str(self.workdir.git("rev-parse", "HEAD")).strip()

    def commit(self, files: Mapping[str, bytes | str | None], message: str = "change") -> str:
        """Commit ``files`` (None deletes) in the clone and push to main; the new revision."""
        revision: str = self.workdir.commit(files, message)
        self.workdir.push()
        return revision

    def new_cert(self, name: str) -> tuple[Path, Path]:
        """A new leaf for mail.example.test in ``root/certs/<name>/``: (fullchain, key)."""
        cert = self.issue_cert(HOSTNAME)
        self.ca_file = cert.ca_file  # one CA for the session
        where = self.root / "certs" / name
        where.mkdir(parents=True)
        shutil.copy(cert.fullchain, where / "fullchain.pem")
        shutil.copy(cert.privkey, where / "privkey.pem")
        return where / "fullchain.pem", where / "privkey.pem"

    # --- host settings ---

    def write_host(
        self,
        *,
        service: str = "supervise",
        restart_command: Sequence[str] | None = None,
        reload_strategy: str | None = None,
        probe_deadline: float | None = None,
        state_dir: Path | None = None,
        commit_back: bool = False,
    ) -> None:
        """(Re)write the host settings; chasquid.args stay those the sandbox was made with.

        The daemon's commit-back is off unless asked for: it moves the branch tip.
        """
        lines = [
            f"repo: {self.origin.path}",
            "branch: main",
            f"state_dir: {state_dir or self.state_dir}",
            f"commit_back: {'true' if commit_back else 'false'}",
        ]
        if probe_deadline is not None:
            lines.append(f"probe_deadline: {probe_deadline}")
        lines += ["chasquid:", f"  config_dir: {self.config_dir}", f"  service: {service}"]
        if restart_command is not None:
            lines.append(f"  restart_command: {json.dumps(list(restart_command))}")
        if reload_strategy is not None:
            lines.append(f"  reload_strategy: {reload_strategy}")
        if self.chasquid_args:
            lines.append(f"  args: {json.dumps(list(self.chasquid_args))}")
        self.host_file.write_text("\n".join(lines) + "\n")

    def gated_restart(self) -> Path:
        """Host settings in ``service: command`` mode whose restart waits at a gate.

        The restart command creates ``gate/entered`` when it starts and goes on
        (a real restart through the supervisor) once ``gate/open`` exists.
        Returns the gate directory.
        """
        gate = self.root / "gate"
        gate.mkdir(exist_ok=True)
        script = self.root / "restart-chasquid"
        script.write_text(RESTART_SCRIPT.format(gate=gate, state=self.state_dir))
        script.chmod(0o755)
        self.write_host(service="command", restart_command=[str(script)])
        return gate

    # --- the command line ---

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, hostconfig.ENV_VAR: str(self.host_file), **extra}

    def gm(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60) -> Result:
        """Run ``gitops-mail ARGS`` with this host's settings; its exit code and output."""
        done = subprocess.run(
            [*GITOPS_MAIL, *args],
            env=self.env(**(env or {})),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def run(self, *args: str) -> Result:
        """``gitops-mail ARGS`` in this process: the same code, without a start-up per call."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["--config", str(self.host_file), *args])
        return Result(code, out.getvalue(), err.getvalue())

    def start_gm(
        self, name: str, *args: str, session: bool = False
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """Start ``gitops-mail ARGS`` in the background (in a new session if ``session``);
        its standard output and error go to ``root/<name>.out``."""
        out = self.root / f"{name}.out"
        with out.open("wb") as handle:
            child = subprocess.Popen(
                [*GITOPS_MAIL, *args],
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=session,
            )
        self._children.append(child)
        return child, out

    def apply_ok(self, *args: str) -> Result:
        done = self.run("apply", *args)
        assert done.code == 0, f"apply failed:\n{done.out}{done.err}"
        return done

    def history(self) -> list[dict[str, Any]]:
        done = self.run("history", "--format", "json")
        assert done.code == 0, done.err
        history: list[dict[str, Any]] = json.loads(done.out)
        return history

    def status(self) -> dict[str, Any]:
        done = self.run("status", "--format", "json")
        assert done.code == 0, done.err
        status: dict[str, Any] = json.loads(done.out)
        return status

    # --- the live server ---

    def tree(self) -> TreeState:
        return tree_state(self.config_dir)

    def assert_untouched(self, before: TreeState, result: str, reason: str) -> None:
        """After a failed apply: the live tree as ``before``, chasquid serves, history says why."""
        assert self.tree() == before
        last = self.history()[0]
        assert (last["result"], last["reason"]) == (result, reason)
        self.mail_works()

    def pid(self) -> int | None:
        """The supervisor's current chasquid child, if one runs."""
        return self.supervisor.pid if self.supervisor is not None else None

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

    # --- the supervisor ---

    def start_supervisor(self) -> None:
        """Run the supervisor of the current host settings (service: supervise) in a thread."""
        self.supervisor = Supervisor(hostconfig.load(str(self.host_file)))
        self._thread = threading.Thread(
            target=self.supervisor.run_forever, args=(self._stop,), name="supervisor"
        )
        self._thread.start()
        poll((self.state_dir / "chasquid.pid").exists, 10, "the supervisor's child")

    def close(self) -> None:
        """Open every gate, end what the test started and left running, stop the supervisor."""
        gate = self.root / "gate"
        if gate.is_dir():
            (gate / "open").touch()
        for child in self._children:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=30)
        self.stop_supervisor()

    def stop_supervisor(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            assert not self._thread.is_alive(), "the supervisor did not stop"


@dataclass(frozen=True)
class UsersFiles:
    ana: bytes  # ana@example.test
    ana_bob: bytes  # and bob@example.test


@pytest.fixture(scope="session")
def users_files(tmp_path_factory: pytest.TempPathFactory) -> UsersFiles:
    """Users files written once per session by ``gitops-mail user add`` (scrypt is slow)."""
    repo = tmp_path_factory.mktemp("users")
    found = []
    for address, password in ((ANA, ANA_PASSWORD), (BOB, BOB_PASSWORD)):
        subprocess.run(
            [*GITOPS_MAIL, "user", "add", address, "--password-stdin", "--create-domain"],
            cwd=repo,
            input=f"{password}\n",
            text=True,
            capture_output=True,
            check=True,
        )
        found.append((repo / USERS_PATH).read_bytes())
    return UsersFiles(*found)


class Mounts:
    """``mounts(*args, target)`` runs mount(8); ``mounts.undo(target)`` unmounts it."""

    def __init__(self) -> None:
        self.targets: list[Path] = []

    def __call__(self, *args: str | Path) -> Path:
        subprocess.run(["mount", *map(str, args)], check=True, capture_output=True)
        self.targets.append(Path(args[-1]))
        return Path(args[-1])

    def undo(self, target: Path, *, lazy: bool = False) -> None:
        flags = ["-l"] if lazy else []
        subprocess.run(["umount", *flags, str(target)], check=True, capture_output=True)
        self.targets.reverse()
        self.targets.remove(target)  # the newest mount on target
        self.targets.reverse()


MountFn = Mounts


@pytest.fixture
def mount() -> Iterator[Mounts]:
    """A ``Mounts``; whatever is still mounted is undone (lazily) at teardown."""
    mounts = Mounts()
    yield mounts
    for target in reversed(list(mounts.targets)):
        mounts.undo(target, lazy=True)


MakeSandbox = Callable[..., Sandbox]


@pytest.fixture
def conf_repo(origin: Any, workdir: Any) -> tuple[Any, Any]:
    """tests/conftest.py's bare ``origin`` and its clone ``workdir``."""
    return origin, workdir


@pytest.fixture
def make_sandbox(
    tmp_path: Path,
    mount: MountFn,
    conf_repo: tuple[Any, Any],
    tls_cert: Callable[..., Any],
    users_files: UsersFiles,
) -> Iterator[MakeSandbox]:
    """``make_sandbox(config_dir=None, debian=False, chasquid_args=()) -> Sandbox``, once a test.

    The base revision is committed and pushed, the supervisor runs (chasquid
    fails to start until the first apply fills the config dir), nothing is
    applied yet. ``config_dir`` defaults to ``tmp_path/etc/chasquid``;
    ``debian`` copies the package's /etc/chasquid skeleton into it first.
    Mounts made with the ``mount`` fixture outlive the supervisor.
    """
    made: list[Sandbox] = []

    def make(
        config_dir: Path | None = None, debian: bool = False, chasquid_args: Sequence[str] = ()
    ) -> Sandbox:
        config_dir = config_dir or tmp_path / "etc" / "chasquid"
        if debian:
            config_dir.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["cp", "-a", "/etc/chasquid", str(config_dir)], check=True)
        else:
            config_dir.mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()
        ports = Ports(*(free_port(taken) for _ in range(4)))
        box = Sandbox(
            root=tmp_path,
            config_dir=config_dir,
            state_dir=tmp_path / "state",
            host_file=tmp_path / "host.yaml",
            origin=conf_repo[0],
            workdir=conf_repo[1],
            ports=ports,
            ca_file=Path(),
            fullchain=Path(),
            privkey=Path(),
            users=users_files,
            issue_cert=tls_cert,
            chasquid_args=tuple(chasquid_args),
        )
        box.fullchain, box.privkey = box.new_cert("first")
        (tmp_path / "mailboxes").mkdir()
        mda = tmp_path / "mda.sh"
        mda.write_text(MDA.format(mailboxes=tmp_path / "mailboxes"))
        mda.chmod(0o755)
        box.commit(box.base_files(), "base")
        box.write_host()
        made.append(box)
        box.start_supervisor()
        return box

    yield make
    for box in made:
        box.close()
    assert chasquids_under(tmp_path) == []


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> Sandbox:
    """A sandbox with its base revision applied and serving."""
    box = make_sandbox()
    box.apply_ok()
    return box


def leaf_sha256(fullchain: Path) -> str:
    """SHA-256 (hex) of the first certificate of a PEM file."""
    pem = fullchain.read_text()
    first = pem[: pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(first)).hexdigest()


def fill(directory: Path) -> Path:
    """Write zeros into ``directory/filler`` until its filesystem is full."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler
