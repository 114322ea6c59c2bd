"""Restarting chasquid, in each of the host's service modes.

``service_for(settings)`` picks one of three ``Service`` implementations by
``chasquid.service``:

- ``systemd``: ``systemctl restart UNIT``, then ``systemctl is-active``;
- ``command``: the host's ``restart_command``; whether chasquid runs is read
  from /proc (a chasquid process started on this config dir);
- ``supervise``: chasquid is the child of a ``Supervisor`` (``gitops-mail
  supervise``, later the daemon), perhaps in another process. The supervisor
  names its child in ``state_dir/chasquid.pid``. A restart leaves a request
  file naming that pid (so the supervisor starts the next child at once,
  without crash back-off), sends the child SIGTERM and waits until the pid
  file names a new live chasquid. Whether a supervisor runs at all is read
  from the lock it holds on ``state_dir/supervisor.lock``: a lock dies with
  its process, so a pid file left by a killed supervisor cannot fool it.

Every failure is a ``ServiceError`` with the command's own words and a hint.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gitops_mail.errors import CommandError, GitopsMailError, InvalidConfig
from gitops_mail.host import localfs, procs
from gitops_mail.host.localfs import atomic_write
from gitops_mail.host.lock import held
from gitops_mail.host.settings import ChasquidSettings, HostSettings

RESTART_TIMEOUT = 60.0  # seconds for systemctl or a restart_command
SUPERVISED_RESTART_DEADLINE = 5.0  # seconds until the supervisor names a new child
PIDFILE = "chasquid.pid"
REQUEST_FILE = "chasquid.restart"
LOCK_FILE = "supervisor.lock"
LOG_FILE = "chasquid.log"
DEFAULT_CONFIG_DIR = "/etc/chasquid"  # chasquid's own default for -config_dir


class ServiceError(GitopsMailError):
    """chasquid could not be restarted, or its state could not be read."""


class Service(Protocol):
    def restart(self) -> None:
        """Restart chasquid; return once the new process is up, where that is knowable.

        Raises ``ServiceError`` with the command's own words on failure.
        """
        ...

    def is_running(self) -> bool:
        """Whether chasquid runs now."""
        ...

    def describe(self) -> str:
        """What restarts chasquid, for messages: "systemd unit chasquid.service"."""
        ...


def service_for(settings: HostSettings) -> Service:
    chasquid = settings.chasquid
    if chasquid.service == "systemd":
        return SystemdService(chasquid.unit)
    if chasquid.service == "supervise":
        return SuperviseService(settings)
    if chasquid.service == "command":
        if not chasquid.restart_command:
            raise InvalidConfig(
                f"{settings.path}: chasquid.service is 'command' but chasquid.restart_command "
                "is not set",
                hint="set chasquid.restart_command to the command that restarts chasquid, "
                'as a list: ["sv", "restart", "chasquid"]',
            )
        return CommandService(chasquid.restart_command, chasquid)
    raise InvalidConfig(f"{settings.path}: unknown chasquid.service {chasquid.service!r}")


# --- systemd ----------------------------------------------------------------------


@dataclass(frozen=True)
class SystemdService:
    unit: str
    timeout: float = RESTART_TIMEOUT

    def describe(self) -> str:
        return f"systemd unit {self.unit}"

    def restart(self) -> None:
        done = self._systemctl("restart", self.unit)
        if done.returncode != 0:
            raise ServiceError(f"restarting chasquid failed: {_said(done)}", self._hint())
        if not self.is_running():
            raise ServiceError(f"{self.unit} is not active after its restart", self._hint())

    def is_running(self) -> bool:
        return self._systemctl("is-active", "--quiet", self.unit).returncode == 0

    def _systemctl(self, *args: str) -> procs.Result:
        try:
            return procs.run(["systemctl", *args], timeout=self.timeout, check=False)
        except CommandError as exc:
            raise ServiceError(f"cannot run systemctl: {exc.message}", _NO_SYSTEMD) from exc

    def _hint(self) -> str:
        return f"see `systemctl status {self.unit}` and `journalctl -u {self.unit}`"


_NO_SYSTEMD = (
    "chasquid.service is 'systemd' in the host settings; on a host without systemd "
    "use 'supervise' or 'command'"
)


# --- a restart command --------------------------------------------------------------


@dataclass(frozen=True)
class CommandService:
    """Restart with the host's own command; chasquid's process is looked for in /proc.

    When the command returns, chasquid is restarted as far as we can know:
    it may run where /proc cannot see it (another container), so the probe
    that follows, not this class, judges whether it serves.
    """

    command: tuple[str, ...]
    chasquid: ChasquidSettings
    timeout: float = RESTART_TIMEOUT

    def describe(self) -> str:
        return f"restart command {' '.join(self.command)!r}"

    def restart(self) -> None:
        try:
            procs.run(self.command, timeout=self.timeout)
        except CommandError as exc:
            raise ServiceError(
                f"restarting chasquid failed: {exc.message}",
                "run the command by hand to see why; it is chasquid.restart_command "
                "in the host settings",
            ) from exc

    def is_running(self) -> bool:
        return bool(chasquid_pids(self.chasquid))


# --- our own supervisor ---------------------------------------------------------------


@dataclass(frozen=True)
class SuperviseService:
    settings: HostSettings
    deadline: float = SUPERVISED_RESTART_DEADLINE

    def describe(self) -> str:
        return f"gitops-mail supervisor (state dir {self.settings.state_dir})"

    def restart(self) -> None:
        state_dir = self.settings.state_dir
        if not supervisor_running(state_dir):
            raise self._no_supervisor()
        old = read_pid(state_dir / PIDFILE)
        alive = old is not None and is_chasquid(old, self.settings.chasquid)
        atomic_write(state_dir / REQUEST_FILE, f"{old if alive else 0}\n".encode(), mode=0o600)
        if alive and old is not None:
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.kill(old, signal.SIGTERM)
        self._wait_for_new_child(old if alive else None)

    def is_running(self) -> bool:
        pid = read_pid(self.settings.state_dir / PIDFILE)
        return pid is not None and is_chasquid(pid, self.settings.chasquid)

    def _wait_for_new_child(self, old: int | None) -> None:
        pidfile = self.settings.state_dir / PIDFILE
        end = time.monotonic() + self.deadline
        while time.monotonic() < end:
            pid = read_pid(pidfile)
            if pid is not None and pid != old and is_chasquid(pid, self.settings.chasquid):
                return
            if not supervisor_running(self.settings.state_dir):
                raise self._no_supervisor()
            time.sleep(0.005)
        raise ServiceError(
            f"the gitops-mail supervisor did not start a new chasquid within {self.deadline:g} s",
            f"read chasquid's log, {self.settings.state_dir / LOG_FILE}, "
            "and the supervisor's own output",
        )

    def _no_supervisor(self) -> ServiceError:
        return ServiceError(
            f"no gitops-mail supervisor is running for state dir {self.settings.state_dir}, "
            "so chasquid cannot be restarted",
            f"start it: `gitops-mail supervise --config {self.settings.path}`",
        )


def supervisor_running(state_dir: Path) -> bool:
    """Whether a process holds the supervisor lock of ``state_dir``."""
    return held(state_dir / LOCK_FILE)


def read_pid(path: Path) -> int | None:
    """The pid in a pid file of ours; None when there is none, or none we wrote."""
    try:
        text = localfs.read_own(path).decode("ascii", "replace").strip()
    except (FileNotFoundError, localfs.NotOurs):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


# --- chasquid processes, from /proc ---------------------------------------------------


def chasquid_pids(chasquid: ChasquidSettings) -> list[int]:
    """Live processes running ``chasquid.binary`` on ``chasquid.config_dir``."""
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return sorted(pid for pid in pids if is_chasquid(pid, chasquid))


def is_chasquid(pid: int, chasquid: ChasquidSettings) -> bool:
    """Whether ``pid`` is alive (not a zombie), runs the binary and serves the config dir.

    The binary is ``/proc/PID/exe`` (a binary replaced by a package upgrade
    still counts). The config dir is the ``-config_dir`` flag in any spelling
    Go's flag package accepts (chasquid's default when absent), or the working
    directory: chasquid changes into its config dir at start.
    """
    proc = Path(f"/proc/{pid}")
    try:
        if _state(proc) in ("Z", "X"):
            return False
        exe = os.readlink(proc / "exe").removesuffix(" (deleted)")
        argv = (proc / "cmdline").read_bytes().split(b"\0")
        cwd = os.readlink(proc / "cwd")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    if not _same_path(exe, chasquid.binary):
        return False
    wanted = chasquid.config_dir
    return _same_path(config_dir_flag(argv), wanted) or _same_path(cwd, wanted)


def config_dir_flag(argv: list[bytes]) -> str:
    """The ``-config_dir`` value of a chasquid command line."""
    args = [os.fsdecode(a) for a in argv[1:]]
    for i, arg in enumerate(args):
        name, has_value, value = arg.lstrip("-").partition("=")
        if arg.startswith("-") and name == "config_dir":
            if has_value:
                return value
            return args[i + 1] if i + 1 < len(args) else DEFAULT_CONFIG_DIR
        if arg == "--" or not arg.startswith("-"):
            break  # flags end here
    return DEFAULT_CONFIG_DIR


def _state(proc: Path) -> str:
    stat = (proc / "stat").read_text()
    return stat[stat.rindex(")") + 2 :][:1]


def _same_path(found: str, wanted: Path) -> bool:
    if os.path.normpath(found) == os.path.normpath(wanted):
        return True
    return os.path.realpath(found) == os.path.realpath(wanted)


def _said(done: procs.Result) -> str:
    """What a failed command said, or its exit status."""
    said = (done.stderr.decode("utf-8", "replace").strip() or done.text.strip())[-2000:]
    shown = " ".join(done.argv)
    return f"command {shown!r} exited {done.returncode}" + (f": {said}" if said else "")
