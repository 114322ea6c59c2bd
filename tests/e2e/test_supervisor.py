"""The supervisor and ``service: supervise`` against the real chasquid 1.11."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import random
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import chasquiduser

from gitops_mail.errors import GitopsMailError
from gitops_mail.host import settings as hostsettings
from gitops_mail.host.service import CommandService, SuperviseService, is_chasquid, service_for
from gitops_mail.host.settings import HostSettings
from gitops_mail.host.supervisor import Backoff, Supervisor

pytestmark = [pytest.mark.netns, pytest.mark.chasquid]

CHASQUID = "/usr/bin/chasquid"
HOUR = 3600.0  # a back-off no test waits out
FINISH_BOUND = 120.0  # seconds: only bounds a supervisor that does not stop
NO_SUPERVISOR = (
    "no gitops-mail supervisor is running for state dir {}, so chasquid cannot be restarted"
)


# --- helpers ---------------------------------------------------------------------


def chasquids(tmp_path: Path) -> list[str]:
    """chasquid processes (zombies included) started on anything under ``tmp_path``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        if comm == "chasquid" and str(tmp_path) in cmdline:
            found.append(f"{entry.name} {stat[stat.rindex(')') + 2]} {cmdline}")
    return found


@pytest.fixture(autouse=True)
def _no_chasquid_left(tmp_path: Path) -> Iterator[None]:
    yield
    assert chasquids(tmp_path) == []


def free_port() -> int:
    """A free loopback port below the ephemeral range (clients take those)."""
    while True:
        port = random.randrange(10000, 32768)  # noqa: S311 - not for security
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def answers(port: int) -> bool:
    """chasquid greets with 220 and answers EHLO with 250 on ``port``."""
    try:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.test", timeout=2) as s:
            return s.ehlo()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


@dataclass(frozen=True)
class Host:
    settings: HostSettings
    smtp_port: int

    @property
    def path(self) -> Path:
        return self.settings.path

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "chasquid.pid"

    def pid(self) -> int | None:
        text = self.pidfile.read_text().strip() if self.pidfile.exists() else ""
        return int(text) if text else None

    def log(self) -> str:
        path = self.state_dir / "chasquid.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def host(tmp_path: Path, make_config_dir: Callable[..., Any]) -> Host:
    """Host settings (service: supervise) for a config dir that names its own ports."""
    config = make_config_dir(tmp_path)
    chasquiduser.give(tmp_path / "data", directory=True)
    chasquiduser.give(tmp_path / "mail.log")
    port = free_port()
    with (config.path / "chasquid.conf").open("a") as conf:
        conf.write(
            f'smtp_address: "127.0.0.1:{port}"\n'
            f'submission_address: "127.0.0.1:{free_port()}"\n'
            f'submission_over_tls_address: "127.0.0.1:{free_port()}"\n'
            f'monitoring_address: "127.0.0.1:{free_port()}"\n'
            f'data_dir: "{tmp_path / "data"}"\n'
            f'mail_log_path: "{tmp_path / "mail.log"}"\n'
        )
    path = tmp_path / "gitops-mail.yaml"
    path.write_text(
        f"repo: {tmp_path / 'repo.git'}\n"
        f"state_dir: {tmp_path / 'state'}\n"
        "chasquid:\n"
        f"  config_dir: {config.path}\n"
        "  service: supervise\n"
        '  args: ["-testing__reload_every=1s"]\n'
    )
    chasquiduser.as_installed(config.path)
    return Host(hostsettings.load(str(path)), port)


@dataclass
class Running:
    supervisor: Supervisor
    stop: threading.Event
    thread: threading.Thread
    outcome: dict[str, Any] = field(default_factory=dict)

    def finish(self) -> int:
        self.stop.set()
        self.thread.join(FINISH_BOUND)
        assert not self.thread.is_alive()
        if "error" in self.outcome:
            raise self.outcome["error"]
        return int(self.outcome["returncode"])


@pytest.fixture
def supervise() -> Iterator[Callable[..., Running]]:
    """``supervise(settings, backoff=None)``: run_forever in a thread; stopped at teardown."""
    started: list[Running] = []

    def start(settings: HostSettings, backoff: Backoff | None = None) -> Running:
        supervisor = Supervisor(settings)
        supervisor.backoff = backoff or supervisor.backoff
        running = Running(supervisor, threading.Event(), threading.Thread())

        def body() -> None:
            try:
                running.outcome["returncode"] = supervisor.run_forever(running.stop)
            except BaseException as exc:
                running.outcome["error"] = exc

        running.thread = threading.Thread(target=body, daemon=True)
        running.thread.start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop.set()
        running.thread.join(10)


def up(host: Host, wait_for: Callable[..., Any], *, other_than: int | None = None) -> int:
    """Wait until the pid file names a chasquid (not ``other_than``) that answers; its pid."""
    pid = wait_for(
        lambda: (
            (p := host.pid()) != other_than and is_chasquid(p or 0, host.settings.chasquid) and p
        ),
        what="a new chasquid in the pid file",
    )
    wait_for(lambda: answers(host.smtp_port), what="chasquid answering SMTP")
    return int(pid)


def supervise_command(host: Host, tmp_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gitops_mail", "supervise", "--config", str(host.path)],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


# --- the back-off policy ----------------------------------------------------------------


def test_backoff_doubles_to_five_seconds_and_resets_after_ten_seconds_up() -> None:
    backoff = Backoff()
    assert [backoff.delay(0.5) for _ in range(8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert backoff.delay(10.0) == 0.1
    assert backoff.delay(9.9) == 0.2


# --- the supervisor in this process -------------------------------------------------------


def test_starts_chasquid_that_answers_and_stops_it(host, supervise, wait_for, tmp_path) -> None:
    running = supervise(host.settings)
    pid = up(host, wait_for)

    assert running.supervisor.pid == pid
    assert os.readlink(f"/proc/{pid}/exe") == CHASQUID
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    config_dir = host.settings.chasquid.config_dir
    assert cmdline == [
        CHASQUID.encode(),
        f"-config_dir={config_dir}".encode(),
        b"-testing__reload_every=1s",
    ]
    assert os.readlink(f"/proc/{pid}/cwd") == str(config_dir)
    log = host.log()
    assert log.startswith("# gitops-mail supervisor: starting chasquid at ")
    assert log.count("Server listening on") == 3
    assert (host.state_dir / "supervisor.lock").read_text() == f"{os.getpid()}\n"

    assert running.finish() == 0
    assert not host.pidfile.exists()
    assert not alive(pid)
    assert chasquids(tmp_path) == []
    assert [(e.pid, e.returncode, e.requested) for e in running.supervisor.exits] == [
        (pid, 1, True)
    ]


def test_killed_child_is_replaced_after_the_first_delay(host, supervise, wait_for, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gitops_mail")
    running = supervise(host.settings)
    first = up(host, wait_for)

    os.kill(first, signal.SIGKILL)
    second = up(host, wait_for, other_than=first)

    assert not alive(first)  # reaped, not a zombie
    (gone,) = running.supervisor.exits
    assert (gone.pid, gone.returncode, gone.requested, gone.delay) == (first, -9, False, 0.1)
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert warning.getMessage() == (
        f"chasquid pid={first} was killed by signal 9 after {gone.uptime:.1f} s; "
        f"starting it again in 0.1 s (its log: {host.state_dir / 'chasquid.log'})"
    )
    assert running.supervisor.pid == second
    assert running.finish() == 0


def test_restart_child_in_process(host, supervise, wait_for) -> None:
    running = supervise(host.settings)
    first = up(host, wait_for)

    running.supervisor.restart_child()

    second = running.supervisor.pid
    assert second not in (None, first)
    assert host.pid() == second
    assert not alive(first)
    assert up(host, wait_for) == second
    assert [(e.pid, e.requested, e.delay) for e in running.supervisor.exits] == [(first, True, 0.0)]
    assert running.finish() == 0


def test_restart_from_another_process(host, supervise, wait_for) -> None:
    running = supervise(host.settings)
    first = up(host, wait_for)
    code = (
        "import sys; from gitops_mail.host import service, settings as hostsettings;"
        "service.service_for(hostsettings.load(sys.argv[1])).restart()"
    )

    done = subprocess.run(
        [sys.executable, "-c", code, str(host.path)], capture_output=True, timeout=30, check=False
    )

    assert (done.returncode, done.stderr) == (0, b"")
    second = host.pid()
    assert second != first
    assert second is not None
    assert is_chasquid(second, host.settings.chasquid)  # up when restart() returned
    assert up(host, wait_for) == second
    assert not alive(first)
    assert [(e.pid, e.returncode, e.requested) for e in running.supervisor.exits] == [
        (first, 1, True)
    ]
    assert not (host.state_dir / "chasquid.restart").exists()
    assert running.finish() == 0


def test_restarts_in_quick_succession_do_not_back_off(host, supervise, wait_for) -> None:
    running = supervise(host.settings)
    service = service_for(host.settings)
    assert isinstance(service, SuperviseService)
    pids = [up(host, wait_for)]

    for _ in range(8):
        service.restart()
        pids.append(up(host, wait_for, other_than=pids[-1]))

    assert len(set(pids)) == 9
    exits = running.supervisor.exits
    assert [(e.requested, e.delay) for e in exits] == [(True, 0.0)] * 8
    assert service.is_running()
    assert running.finish() == 0
    assert not service.is_running()


def test_restart_without_a_supervisor(host, supervise, wait_for) -> None:
    service = service_for(host.settings)
    with pytest.raises(GitopsMailError) as missing:
        service.restart()
    assert missing.value.message == NO_SUPERVISOR.format(host.state_dir)
    assert missing.value.hint == f"start it: `gitops-mail supervise --config {host.path}`"

    running = supervise(host.settings)  # then one that ran and stopped
    pid = up(host, wait_for)
    assert running.finish() == 0
    host.pidfile.write_text(f"{pid}\n")  # even with a stale pid file
    with pytest.raises(GitopsMailError) as stale:
        service.restart()
    assert stale.value.message == NO_SUPERVISOR.format(host.state_dir)
    assert not service.is_running()


def test_a_second_supervisor_is_refused(host, supervise, wait_for) -> None:
    running = supervise(host.settings)
    pid = up(host, wait_for)

    with pytest.raises(GitopsMailError) as refused:
        Supervisor(host.settings).start()

    assert refused.value.message == (
        f"another gitops-mail supervisor is running for state dir {host.state_dir} "
        f"(pid {os.getpid()})"
    )
    assert host.pid() == pid  # the first one's files are left alone
    assert answers(host.smtp_port)
    assert running.finish() == 0


def test_chasquid_that_exits_at_start_backs_off(host, supervise, wait_for) -> None:
    conf = host.settings.chasquid.config_dir / "chasquid.conf"
    conf.write_text(conf.read_text() + "no_such_field: 1\n")
    running = supervise(host.settings)

    wait_for(lambda: len(running.supervisor.exits) >= 5, what="five exits")

    exits = running.supervisor.exits[:5]
    assert [(e.returncode, e.requested, e.delay) for e in exits] == [
        (1, False, 0.1),
        (1, False, 0.2),
        (1, False, 0.4),
        (1, False, 0.8),
        (1, False, 1.6),
    ]
    for before, after in itertools.pairwise(exits):
        assert after.started_at - (before.started_at + before.uptime) >= before.delay
    assert "proto: (line 10:1): unknown field: no_such_field" in host.log()
    assert host.log().count("# gitops-mail supervisor: starting chasquid") >= 5
    assert running.finish() == 0
    assert not host.pidfile.exists()


def test_a_stop_ends_a_back_off_wait_at_once(host, supervise, wait_for) -> None:
    conf = host.settings.chasquid.config_dir / "chasquid.conf"
    conf.write_text(conf.read_text() + "no_such_field: 1\n")
    running = supervise(host.settings, Backoff(initial=HOUR, maximum=HOUR))
    wait_for(lambda: running.supervisor.exits, what="chasquid's first exit")

    assert running.finish() == 0  # within FINISH_BOUND, far less than the hour's wait
    assert [(e.returncode, e.delay) for e in running.supervisor.exits] == [(1, HOUR)]
    assert not host.pidfile.exists()


def test_restart_request_cuts_a_back_off_wait_short(host, supervise, wait_for) -> None:
    conf = host.settings.chasquid.config_dir / "chasquid.conf"
    good = conf.read_text()
    conf.write_text(good + "no_such_field: 1\n")
    running = supervise(host.settings, Backoff(initial=60.0))
    wait_for(lambda: running.supervisor.exits, what="chasquid to exit")
    assert running.supervisor.exits[0].delay == 60.0
    conf.write_text(good)

    service_for(host.settings).restart()  # raises after 5 s without a new chasquid

    pid = up(host, wait_for)
    assert running.supervisor.pid == pid
    assert len(running.supervisor.exits) == 1
    assert not (host.state_dir / "chasquid.restart").exists()
    assert running.finish() == 0


def test_chasquid_left_by_a_killed_supervisor_is_replaced(
    host, supervise, wait_for, tmp_path
) -> None:
    command = supervise_command(host, tmp_path)
    orphan = up(host, wait_for)
    command.kill()
    command.communicate(timeout=10)
    assert alive(orphan)  # still holds the ports

    running = supervise(host.settings)
    second = up(host, wait_for, other_than=orphan)

    assert not alive(orphan)
    assert running.supervisor.pid == second
    assert running.finish() == 0


def test_is_running_in_command_mode_finds_chasquid_by_config_dir(host, supervise, wait_for) -> None:
    chasquid = host.settings.chasquid
    service = CommandService(("true",), chasquid)
    other = CommandService(("true",), hostsettings.ChasquidSettings(config_dir=host.state_dir))
    assert not service.is_running()

    running = supervise(host.settings)
    up(host, wait_for)

    assert service.is_running()
    assert not other.is_running()
    assert running.finish() == 0
    assert not service.is_running()


# --- gitops-mail supervise ------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_supervise_command_stops_cleanly_on_a_signal(host, wait_for, tmp_path, sig) -> None:
    command = supervise_command(host, tmp_path)
    pid = up(host, wait_for)

    command.send_signal(sig)
    _, stderr = command.communicate(timeout=10)

    assert command.returncode == 0, stderr
    assert chasquids(tmp_path) == []
    assert not alive(pid)
    assert not host.pidfile.exists()
    started, stopping, ended = stderr.decode().splitlines()
    assert started == (
        f"gitops-mail supervise: started chasquid pid={pid}, its output goes to "
        f"{host.state_dir / 'chasquid.log'}"
    )
    assert stopping == f"gitops-mail supervise: stopping chasquid pid={pid}"
    pattern = (
        rf"gitops-mail supervise: chasquid pid={pid} exited with code 1 after \d+\.\d s, as asked"
    )
    assert re.fullmatch(pattern, ended), ended


# --- chasquid as chasquid ------------------------------------------------------------------

# Records who runs it, then takes the message.
WHO_AGENT = """#!/bin/sh
echo "$(id -u) $(id -g)" >>{ids}
cat >/dev/null
"""
NET_BIND_SERVICE = 1 << 10  # CAP_NET_BIND_SERVICE in /proc/PID/status masks


def low_port() -> int:
    """A free loopback port below 1024 (in the test's own network namespace)."""
    for port in random.sample(range(600, 1000), 400):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no free port below 1024")


def test_chasquid_and_its_delivery_agent_run_as_chasquid(host, supervise, wait_for, tmp_path):
    uid, gid = chasquiduser.ids()
    config = host.settings.chasquid.config_dir
    ids = chasquiduser.give(tmp_path / "agent-ids")
    agent = tmp_path / "who.sh"
    agent.write_text(WHO_AGENT.format(ids=ids))
    agent.chmod(0o755)
    port = low_port()  # chasquid keeps only the right to bind it
    conf = config / "chasquid.conf"
    text = conf.read_text().replace(f"127.0.0.1:{host.smtp_port}", f"127.0.0.1:{port}")
    conf.write_text(text.replace(str(tmp_path / "mda.sh"), str(agent)))
    subprocess.run(
        ["chasquid-util", f"-C={config}", "user-add", "ana@example.test", "--password=pw"],
        check=True,
        capture_output=True,
    )
    chasquiduser.as_installed(config)
    running = supervise(host.settings)

    pid = wait_for(lambda: (p := host.pid()) and is_chasquid(p, host.settings.chasquid) and p)
    wait_for(lambda: answers(port), what=f"chasquid answering on port {port}")

    status = chasquiduser.status_of(pid)
    assert (status["Uid"].split(), status["Gid"].split()) == ([str(uid)] * 4, [str(gid)] * 4)
    assert status["Groups"].split() == [str(gid)]
    assert int(status["CapEff"], 16) == int(status["CapAmb"], 16) == NET_BIND_SERVICE
    assert int(status["CapPrm"], 16) == NET_BIND_SERVICE
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.test", timeout=10) as smtp:
        smtp.sendmail("<>", ["ana@example.test"], b"Subject: who\r\n\r\nwho runs the agent?\r\n")
    assert wait_for(lambda: ids.read_text().split(), what="the agent's ids") == [
        str(uid),
        str(gid),
    ]
    assert running.finish() == 0


def test_a_missing_chasquid_user_is_a_clear_error(host, tmp_path) -> None:
    chasquid = dataclasses.replace(host.settings.chasquid, user="no-such-chasquid-user")
    settings = dataclasses.replace(host.settings, chasquid=chasquid)
    supervisor = Supervisor(settings)
    with pytest.raises(GitopsMailError) as caught:
        supervisor.start()
    supervisor.shutdown()
    assert caught.value.message == (
        "there is no user 'no-such-chasquid-user' on this host to run chasquid as"
    )
    assert caught.value.hint == (
        "install the chasquid package (it makes the user and group chasquid), or name "
        "another user in chasquid.user in the host settings"
    )
    assert chasquids(tmp_path) == []


def test_the_supervisors_files_are_private_under_umask_000(host, wait_for, tmp_path) -> None:
    command = subprocess.Popen(
        [sys.executable, "-m", "gitops_mail", "supervise", "--config", str(host.path)],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        umask=0,
    )
    try:
        up(host, wait_for)
        found = {p.name: oct(p.stat().st_mode & 0o7777) for p in sorted(host.state_dir.iterdir())}
    finally:
        command.terminate()
        command.wait(timeout=30)
    assert oct(host.state_dir.stat().st_mode & 0o7777) == "0o700"
    assert found == {
        "chasquid.log": "0o600",
        "chasquid.pid": "0o600",
        "supervisor.lock": "0o600",
    }
